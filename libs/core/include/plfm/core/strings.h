// Small string utilities shared across components.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace plfm {

// Escapes `s` for use inside a JSON string literal (without the quotes).
// Control characters become \uXXXX; valid UTF-8 passes through unchanged.
[[nodiscard]] std::string jsonEscape(std::string_view s);
void appendJsonEscaped(std::string& out, std::string_view s);

[[nodiscard]] std::vector<std::string_view> splitLines(std::string_view s);
[[nodiscard]] std::string_view trim(std::string_view s);
[[nodiscard]] bool startsWith(std::string_view s, std::string_view prefix);
[[nodiscard]] bool endsWith(std::string_view s, std::string_view suffix);

// Lowercase hex of `data`.
[[nodiscard]] std::string hexEncode(std::string_view data);

}  // namespace plfm
