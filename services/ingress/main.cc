#include "command_line.h"

int main(int argc, char** argv) { return plfm::ingress::runMain(argc, argv); }
