#include "image/layer_stream.h"
#include "image/errors.h"

#include <algorithm>
#include <cerrno>

namespace plfm::image {

LayerStream::LayerStream(archive* raw, const UnpackLimits& limits, std::string layer,
                         uint64_t image_base)
    : raw_(raw), limits_(limits), layer_(std::move(layer)), image_base_(image_base) {
  for (auto& slot : ring_) slot.buf.resize(kBufferBytes);
  producer_ = std::thread([this] { produce(); });
}

ssize_t LayerStream::next(const void** out) {
  std::unique_lock lock(mu_);
  if (taken_ > 0) {
    consumed_ = taken_;  // the previous chunk is no longer in use
    cv_.notify_all();
  }
  cv_.wait(lock, [&] { return produced_ > taken_ || error_.has_value() || done_; });
  if (produced_ <= taken_) return error_ ? -1 : 0;
  Slot& slot = ring_[taken_ % kSlots];
  ++taken_;
  *out = slot.buf.data();
  return static_cast<ssize_t>(slot.len);
}

void LayerStream::finish() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (producer_.joinable()) producer_.join();
}

std::optional<Error> LayerStream::error() {
  std::lock_guard lock(mu_);
  return error_;
}

bool LayerStream::atEnd() {
  std::lock_guard lock(mu_);
  return done_ && taken_ >= produced_;
}

Error LayerStream::limitError(const std::string& what, const std::string& limit,
                              uint64_t value) const {
  return Error(errc::kLimitExceeded, "layer " + layer_ + ": " + what + " (limit " + limit + " = " +
                                         std::to_string(value) + ")")
      .with("layer", layer_)
      .with("limit", limit);
}

void LayerStream::fail(Error e) {
  std::lock_guard lock(mu_);
  error_ = std::move(e);
  cv_.notify_all();
}

std::optional<Error> LayerStream::checkLimits() const {
  if (tar_bytes_ > limits_.max_layer_unpacked_bytes) {
    return limitError("uncompressed size exceeds the limit (decompression bomb?)",
                      "max_layer_unpacked_bytes", limits_.max_layer_unpacked_bytes);
  }
  if (image_base_ + tar_bytes_ > limits_.max_image_unpacked_bytes) {
    return limitError("the image's uncompressed size exceeds the limit", "max_image_unpacked_bytes",
                      limits_.max_image_unpacked_bytes);
  }
  // An uncompressed layer has a ratio of 1 by construction, and libarchive
  // counts its input only as it is consumed (a buffer behind), which would
  // read as a huge ratio right after the first chunk.
  const bool compressed_layer = archive_filter_code(raw_, 0) != ARCHIVE_FILTER_NONE;
  if (compressed_layer && tar_bytes_ > limits_.ratio_grace_bytes) {
    const auto compressed =
        static_cast<uint64_t>(std::max<la_int64_t>(archive_filter_bytes(raw_, -1), 1));
    if (tar_bytes_ / compressed > limits_.max_compression_ratio) {
      return limitError("compression ratio " + std::to_string(tar_bytes_ / compressed) +
                            ":1 exceeds the limit (decompression bomb?)",
                        "max_compression_ratio", limits_.max_compression_ratio);
    }
  }
  return std::nullopt;
}

void LayerStream::produce() {
  while (true) {
    Slot* slot = nullptr;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || produced_ - consumed_ < kSlots; });
      if (stop_) return;
      slot = &ring_[produced_ % kSlots];
    }
    const la_ssize_t n = archive_read_data(raw_, slot->buf.data(), slot->buf.size());
    if (n < 0) {
      fail(Error(errc::kBadLayer,
                 "layer " + layer_ + ": cannot decompress: " + archive_error_string(raw_))
               .with("layer", layer_));
      return;
    }
    hasher_.update(slot->buf.data(), static_cast<size_t>(n));
    tar_bytes_ += static_cast<uint64_t>(n);
    if (auto e = checkLimits()) {
      fail(std::move(*e));
      return;
    }
    slot->len = static_cast<size_t>(n);
    {
      std::lock_guard lock(mu_);
      ++produced_;
      done_ = n == 0;  // the end: an empty chunk tells the reader
    }
    cv_.notify_all();
    if (n == 0) return;
  }
}

la_ssize_t LayerStream::readCallback(archive* a, void* ctx, const void** out) {
  auto* s = static_cast<LayerStream*>(ctx);
  const ssize_t n = s->next(out);
  if (n < 0) {
    auto e = s->error();
    archive_set_error(a, EINVAL, "%s", e ? e->message().c_str() : "read failed");
    return -1;
  }
  return n;
}

}  // namespace plfm::image
