#include "plfm/core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

#include <fmt/format.h>

#include "plfm/core/clock.h"
#include "plfm/core/redact.h"
#include "plfm/core/strings.h"

namespace plfm::log {
namespace {

// Wraps another sink and masks registered secrets in every message before it
// reaches the inner sink. Sinks are thread-safe on their own (_mt), so this
// wrapper needs no lock.
class RedactingSink final : public spdlog::sinks::sink {
 public:
  explicit RedactingSink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}

  void log(const spdlog::details::log_msg& msg) override {
    std::string masked;
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!Redactor::global().redactInto(payload, masked)) {
      inner_->log(msg);
      return;
    }
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(masked.data(), masked.size());
    inner_->log(copy);
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> f) override {
    inner_->set_formatter(std::move(f));
  }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_;
};

// What write() needs, swapped as one unit by init().
struct Sink {
  std::shared_ptr<spdlog::logger> logger;
  std::string component;
};

struct State {
  std::mutex mu;
  std::shared_ptr<const Sink> sink;
  std::atomic<int> level{static_cast<int>(Level::kInfo)};
};

State& state() {
  static State s;
  return s;
}

std::shared_ptr<spdlog::logger> makeLogger(const Options& o) {
  std::shared_ptr<spdlog::sinks::sink> inner;
  if (o.stream != nullptr) {
    inner = std::make_shared<spdlog::sinks::ostream_sink_mt>(*o.stream, /*force_flush=*/true);
  } else if (!o.file.empty()) {
    inner = std::make_shared<spdlog::sinks::basic_file_sink_mt>(o.file, /*truncate=*/false);
  } else {
    inner = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  auto logger = std::make_shared<spdlog::logger>("plfm", std::make_shared<RedactingSink>(inner));
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::trace);  // filtering happens in write()
  // Every record reaches the file at once: a daemon killed with SIGKILL must
  // not take its last lines (the ones that explain the kill) with it.
  logger->flush_on(spdlog::level::trace);
  return logger;
}

std::shared_ptr<const Sink> current() {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.sink) {
    Options defaults;
    s.sink = std::make_shared<const Sink>(Sink{makeLogger(defaults), defaults.component});
  }
  return s.sink;
}

spdlog::level::level_enum toSpd(Level l) {
  switch (l) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

Field::Field(std::string_view key, std::string_view value) : key_(key) {
  json_.reserve(value.size() + 2);
  json_ += '"';
  appendJsonEscaped(json_, value);
  json_ += '"';
}

Field::Field(std::string_view key, bool value) : key_(key), json_(value ? "true" : "false") {}

Field::Field(std::string_view key, double value) : key_(key), json_(fmt::format("{}", value)) {}

Result<Level> parseLevel(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  return Error(errc::kInvalidArgument,
               "unknown log level '" + std::string(name) + "' (expected debug|info|warn|error|off)")
      .with("field", "log_level");
}

std::string_view levelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
    case Level::kOff:
      return "off";
  }
  return "info";
}

void init(const Options& options) {
  State& s = state();
  auto sink = std::make_shared<const Sink>(Sink{makeLogger(options), options.component});
  std::lock_guard lock(s.mu);
  if (s.sink) s.sink->logger->flush();
  s.sink = std::move(sink);
  s.level = static_cast<int>(options.level);
}

void setLevel(Level level) { state().level = static_cast<int>(level); }

bool enabled(Level level) {
  return level != Level::kOff && static_cast<int>(level) >= state().level.load();
}

void flush() { current()->logger->flush(); }

std::string formatRecord(std::string_view ts, Level level, std::string_view component,
                         std::string_view msg, Fields fields) {
  std::string line;
  line.reserve(96 + msg.size() + fields.size() * 32);
  line += R"({"ts":")";
  line += ts;
  line += R"(","level":")";
  line += levelName(level);
  line += R"(","component":")";
  appendJsonEscaped(line, component);
  line += R"(","msg":")";
  appendJsonEscaped(line, msg);
  line += '"';
  for (const Field& f : fields) {
    line += ",\"";
    appendJsonEscaped(line, f.key());
    line += "\":";
    line += f.json();
  }
  line += '}';
  return line;
}

void write(Level level, std::string_view msg, Fields fields) {
  if (!enabled(level)) return;
  const auto sink = current();
  const std::string line =
      formatRecord(toRfc3339(RealClock::instance().now()), level, sink->component, msg, fields);
  sink->logger->log(toSpd(level), spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace plfm::log
