// LayerStream: the uncompressed byte stream of one layer, for libarchive's
// tar reader. Decompression (gzip, zstd or none, sniffed), the sha256 that
// becomes the diff_id, and the size and ratio limits run on a producer
// thread one buffer ahead of the reader, so that inflating the next megabyte
// overlaps with writing the files of the last one. Internal to
// layer_applier.cc.
#pragma once

#include <archive.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "image/layer_applier.h"
#include "plfm/core/sha256.h"

namespace plfm::image {

class LayerStream {
 public:
  static constexpr size_t kBufferBytes = 1 << 20;

  // `raw` is a libarchive reader opened with the raw format; it must outlive
  // the stream.
  LayerStream(archive* raw, const UnpackLimits& limits, std::string layer, uint64_t image_base);
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;
  ~LayerStream() { finish(); }

  // The next chunk, valid until the following call: its length, 0 at the
  // end, -1 on error (then error() says why).
  ssize_t next(const void** out);
  // Stops the producer and waits for it. Safe to call twice.
  void finish();

  [[nodiscard]] std::optional<Error> error();
  // True once the reader has been handed the end of the stream (the 0).
  [[nodiscard]] bool atEnd();
  // After finish(): the uncompressed size and its sha256.
  [[nodiscard]] uint64_t tarBytes() const { return tar_bytes_; }
  [[nodiscard]] std::string hexDigest() { return hasher_.hexDigest(); }

  [[nodiscard]] Error limitError(const std::string& what, const std::string& limit,
                                 uint64_t value) const;

  // An archive_read_open() callback reading from the LayerStream in `ctx`.
  static la_ssize_t readCallback(archive* a, void* ctx, const void** out);

 private:
  static constexpr size_t kSlots = 4;
  struct Slot {
    std::vector<char> buf;
    size_t len = 0;
  };

  void fail(Error e);
  [[nodiscard]] std::optional<Error> checkLimits() const;
  void produce();

  archive* raw_;
  const UnpackLimits& limits_;
  std::string layer_;
  uint64_t image_base_;
  std::array<Slot, kSlots> ring_;
  Sha256 hasher_;           // producer thread only, until finish()
  uint64_t tar_bytes_ = 0;  // likewise
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t produced_ = 0;  // slots filled
  uint64_t taken_ = 0;     // slots handed to the reader
  uint64_t consumed_ = 0;  // slots the reader is done with
  bool stop_ = false;
  bool done_ = false;
  std::optional<Error> error_;
  std::thread producer_;
};

}  // namespace plfm::image
