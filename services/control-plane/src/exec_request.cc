#include "exec_request.h"

#include <algorithm>

#include "api.h"

namespace plfm::cp {
namespace gp = guest_proto;

namespace {

Error badField(std::string_view field, const std::string& why) {
  return Error(apierr::kInvalidField, "field '" + std::string(field) + "' " + why)
      .with("field", std::string(field));
}

bool hasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

Result<std::optional<uint16_t>> optionalSize(const json::Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<uint16_t>();
  if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 65535) {
    return badField(field, "must be an integer from 1 to 65535");
  }
  return std::optional<uint16_t>(static_cast<uint16_t>(it->get<int64_t>()));
}

Result<std::optional<std::string>> optionalText(const json::Json& body, std::string_view field,
                                                size_t max_bytes) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  const std::string* text = it->get_ptr<const std::string*>();
  if (text == nullptr) return badField(field, "must be a string");
  const std::string& s = *text;
  if (s.empty() || s.size() > max_bytes || hasNul(s)) {
    return badField(field,
                    "must be 1 to " + std::to_string(max_bytes) + " bytes without NUL characters");
  }
  return std::optional<std::string>(s);
}

}  // namespace

Result<ExecCommand> parseExecCommand(const json::Json& body) {
  if (!body.is_object()) {
    return Error(apierr::kInvalidJson, "the request body must be a JSON object");
  }
  ExecCommand c;
  auto argv = body.find("argv");
  if (argv == body.end() || argv->is_null()) return badField("argv", "is required");
  if (!argv->is_array() || argv->empty() || argv->size() > kMaxExecArgs) {
    return badField("argv", "must be an array of 1 to " + std::to_string(kMaxExecArgs) +
                                " strings (the program, then its arguments)");
  }
  size_t i = 0;
  for (const json::Json& a : *argv) {
    const std::string* s = a.get_ptr<const std::string*>();
    if (s == nullptr || s->size() > kMaxExecArgBytes || hasNul(*s)) {
      return badField("argv", "entry " + std::to_string(i) + " must be a string of at most " +
                                  std::to_string(kMaxExecArgBytes) + " bytes without NUL");
    }
    c.argv.push_back(*s);
    ++i;
  }
  if (c.argv[0].empty()) return badField("argv", "entry 0 (the program) must not be empty");

  if (auto tty = body.find("tty"); tty != body.end() && !tty->is_null()) {
    if (!tty->is_boolean()) return badField("tty", "must be true or false");
    c.tty = tty->get<bool>();
  }
  PLFM_ASSIGN_OR_RETURN(auto rows, optionalSize(body, "rows"));
  PLFM_ASSIGN_OR_RETURN(auto cols, optionalSize(body, "cols"));
  if (!c.tty && (rows || cols)) {
    return badField(rows ? "rows" : "cols", "needs tty: a terminal size is for PTY sessions");
  }
  if (rows) c.rows = *rows;
  if (cols) c.cols = *cols;
  PLFM_ASSIGN_OR_RETURN(c.user, optionalText(body, "user", gp::kMaxExecUserBytes));
  PLFM_ASSIGN_OR_RETURN(c.workdir, optionalText(body, "workdir", gp::kMaxPathBytes));
  if (c.workdir && c.workdir->front() != '/') {
    return badField("workdir", "must be an absolute path");
  }

  // The frame codec's own rules, and its size limit (64 KiB for the whole
  // EXEC_OPEN: 256 arguments of 4 KiB each would not fit).
  const gp::ExecOpen open = toExecOpen(c);
  if (auto valid = gp::validateExecOpen(open); !valid) {
    return badField("argv", "does not make a valid exec request: " + valid.error().message);
  }
  if (auto frame = gp::encode(open, gp::kFirstExecStream); !frame) {
    return badField("argv",
                    "is too large: the whole command (argv, user and workdir) must fit "
                    "in " +
                        std::to_string(gp::kMaxExecOpenBytes / 1024) + " KiB");
  }
  return c;
}

json::Json execCommandJson(const ExecCommand& c) {
  json::Json j = {{"argv", c.argv}, {"tty", c.tty}};
  if (c.tty) {
    j["rows"] = c.rows;
    j["cols"] = c.cols;
  }
  if (c.user) j["user"] = *c.user;
  if (c.workdir) j["workdir"] = *c.workdir;
  return j;
}

gp::ExecOpen toExecOpen(const ExecCommand& c) {
  gp::ExecOpen o;
  o.argv = c.argv;
  o.user = c.user;
  o.workdir = c.workdir;
  o.tty = c.tty;
  o.rows = c.rows;
  o.cols = c.cols;
  o.window = gp::kExecInitialWindow;
  o.timeout_ms = 0;
  return o;
}

}  // namespace plfm::cp
