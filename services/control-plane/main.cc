#include "control_plane.h"

int main(int argc, char** argv) { return plfm::cp::runMain(argc, argv); }
