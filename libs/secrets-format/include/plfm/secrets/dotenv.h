// A lenient-but-clear dotenv reader for `vt secrets import FILE`.
//
// Accepted, as common dotenv tools do:
//   # comments and blank lines
//   export API_TOKEN=abc           (an optional `export ` prefix)
//   NAME = value  # comment        (spaces around '='; unquoted values end
//                                   at " #" and are trimmed)
//   PEM="line1\nline2"             (double quotes: \n \r \t \\ \" \$ \` \xNN;
//                                   any other backslash is kept literally)
//   RAW='no $escapes\n here'       (single quotes: taken literally)
//   MULTI="first                   (quoted values may span lines)
//   second"
// No variable interpolation: "${OTHER}" stays as written, so importing never
// depends on the importing shell's environment. A secrets file written by
// encode() is itself valid dotenv and imports to the same map.
//
// Unlike most dotenv tools, it refuses what is probably a mistake: invalid
// keys, duplicate keys, unterminated quotes and text after a closing quote.
// Errors name the line and column and never quote the file's content (a
// malformed line may be part of a secret); only a valid key name may appear.
#pragma once

#include <string_view>

#include "plfm/secrets/error.h"
#include "plfm/secrets/format.h"

namespace plfm::secrets {

// Parses `text` into a map, within the same limits as the secrets file.
[[nodiscard]] Result<SecretMap> parseDotenv(std::string_view text);

}  // namespace plfm::secrets
