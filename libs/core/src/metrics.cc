#include "plfm/core/metrics.h"

#include <fmt/format.h>

#include <cmath>

#include "plfm/core/assert.h"

namespace plfm::metrics {
namespace {

std::string escapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string labelText(const Labels& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ",";
    out += labels[i].first + "=\"" + escapeLabel(labels[i].second) + "\"";
  }
  if (!extra.empty()) out += (labels.empty() ? "" : ",") + extra;
  return out + "}";
}

std::string num(double v) { return fmt::format("{}", v); }

}  // namespace

void Counter::inc(const Labels& labels, double by) {
  std::lock_guard lock(mu_);
  values_[labels] += by;
}

double Counter::value(const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0 : it->second;
}

void Gauge::set(double v, const Labels& labels) {
  std::lock_guard lock(mu_);
  values_[labels] = v;
}

void Gauge::add(double v, const Labels& labels) {
  std::lock_guard lock(mu_);
  values_[labels] += v;
}

double Gauge::value(const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0 : it->second;
}

void Histogram::observe(double v, const Labels& labels) {
  std::lock_guard lock(mu_);
  Series& s = series_[labels];
  if (s.counts.empty()) s.counts.assign(buckets_.size() + 1, 0);
  size_t i = 0;
  while (i < buckets_.size() && v > buckets_[i]) ++i;
  ++s.counts[i];
  ++s.total;
  s.sum += v;
}

uint64_t Histogram::count(const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.total;
}

double Histogram::quantile(double q, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  if (it == series_.end() || it->second.total == 0) return 0;
  const auto target =
      static_cast<uint64_t>(std::llround(q * static_cast<double>(it->second.total)));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += it->second.counts[i];
    if (seen >= target) return buckets_[i];
  }
  return buckets_.empty() ? 0 : buckets_.back();
}

Counter& Registry::counter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mu_);
  Family& f = families_[name];
  if (!f.counter) {
    PLFM_ASSERT(f.type.empty(), "metric registered twice with different types");
    f = Family{help, "counter", std::make_unique<Counter>(), nullptr, nullptr};
  }
  return *f.counter;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help) {
  std::lock_guard lock(mu_);
  Family& f = families_[name];
  if (!f.gauge) {
    PLFM_ASSERT(f.type.empty(), "metric registered twice with different types");
    f = Family{help, "gauge", nullptr, std::make_unique<Gauge>(), nullptr};
  }
  return *f.gauge;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               std::vector<double> buckets) {
  std::lock_guard lock(mu_);
  Family& f = families_[name];
  if (!f.histogram) {
    PLFM_ASSERT(f.type.empty(), "metric registered twice with different types");
    f = Family{help, "histogram", nullptr, nullptr,
               std::make_unique<Histogram>(std::move(buckets))};
  }
  return *f.histogram;
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out.append("# HELP ").append(name).append(" ").append(f.help);
    out.append("\n# TYPE ").append(name).append(" ").append(f.type).append("\n");
    if (f.counter) {
      std::lock_guard l2(f.counter->mu_);
      for (const auto& [labels, v] : f.counter->values_) {
        out += name + labelText(labels) + " " + num(v) + "\n";
      }
    } else if (f.gauge) {
      std::lock_guard l2(f.gauge->mu_);
      for (const auto& [labels, v] : f.gauge->values_) {
        out += name + labelText(labels) + " " + num(v) + "\n";
      }
    } else if (f.histogram) {
      const Histogram& h = *f.histogram;
      std::lock_guard l2(h.mu_);
      for (const auto& [labels, s] : h.series_) {
        uint64_t cum = 0;
        for (size_t i = 0; i < h.buckets_.size(); ++i) {
          cum += s.counts[i];
          out += name + "_bucket" + labelText(labels, "le=\"" + num(h.buckets_[i]) + "\"") + " " +
                 std::to_string(cum) + "\n";
        }
        out += name + "_bucket" + labelText(labels, "le=\"+Inf\"") + " " + std::to_string(s.total) +
               "\n";
        out += name + "_sum" + labelText(labels) + " " + num(s.sum) + "\n";
        out += name + "_count" + labelText(labels) + " " + std::to_string(s.total) + "\n";
      }
    }
  }
  return out;
}

}  // namespace plfm::metrics
