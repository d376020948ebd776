// Small string utilities shared across components.
#pragma once

#include <optional>
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

// The candidate closest to `word` by edit distance, if it is close enough to
// be a plausible typo (at most a third of the word's length, minimum 1);
// ties go to the earlier candidate. For "did you mean ..." hints.
[[nodiscard]] std::optional<std::string> closestMatch(
    std::string_view word, const std::vector<std::string_view>& candidates);

// `s` with A-Z made a-z (ASCII only; other bytes unchanged).
[[nodiscard]] std::string asciiLower(std::string_view s);

// Lowercase hex of `data`.
[[nodiscard]] std::string hexEncode(std::string_view data);

}  // namespace plfm
