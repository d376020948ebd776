// Every relative link in the repository's Markdown ([text](path) and
// [text](path#anchor)) names a file or directory that exists, so a renamed
// spec or a moved ADR cannot leave a dangling reference behind (issue 21,
// "Docs drift").
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace plfm {
namespace {

namespace fs = std::filesystem;

bool skipped(const fs::path& rel) {
  const std::string first = rel.begin() == rel.end() ? "" : rel.begin()->string();
  return first.starts_with(".") || first.starts_with("build") || first == "node_modules";
}

std::vector<fs::path> markdownFiles(const fs::path& root) {
  std::vector<fs::path> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const fs::path rel = fs::relative(it->path(), root);
    if (it->is_directory() && skipped(rel)) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && it->path().extension() == ".md") out.push_back(it->path());
  }
  return out;
}

TEST(DocsLinksTest, EveryRelativeLinkResolves) {
  const fs::path root(PLFM_SOURCE_DIR);
  const std::regex link(R"(\]\(([^)\s]+)\))");
  const std::regex scheme(R"(^[a-z][a-z0-9+.-]*:)");
  const auto files = markdownFiles(root);
  ASSERT_GT(files.size(), 20U) << "found too few Markdown files under " << root;
  size_t checked = 0;
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      for (auto m = std::sregex_iterator(line.begin(), line.end(), link);
           m != std::sregex_iterator(); ++m) {
        std::string target = (*m)[1].str();
        target = target.substr(0, target.find('#'));
        if (target.empty() || std::regex_search(target, scheme)) continue;  // anchors, URLs
        ++checked;
        const fs::path resolved = (file.parent_path() / target).lexically_normal();
        EXPECT_TRUE(fs::exists(resolved))
            << fs::relative(file, root).string() << ":" << n << " links to " << (*m)[1].str()
            << ", which does not exist";
      }
    }
  }
  EXPECT_GT(checked, 50U) << "found too few links; is the link pattern still right?";
}

}  // namespace
}  // namespace plfm
