#include "image/oci_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "image/errors.h"
#include "image/media_types.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::image {

Result<std::string> OciLayoutSource::readBlob(const Digest& d) const {
  const std::string p = dir_ + "/blobs/sha256/" + d.hex();
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) {
    return Error(errc::kNotFound, "blob " + d.str() + " is missing from layout " + dir_)
        .with("digest", d.str());
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxManifestBytes) {
    return Error(errc::kBadManifest, "manifest " + d.str() + " in " + dir_ + " is too large");
  }
  return readFile(p);
}

Result<FetchedManifest> OciLayoutSource::fetchManifest(std::string_view reference) {
  if (startsWith(reference, "sha256:")) {
    PLFM_ASSIGN_OR_RETURN(auto d, Digest::parse(reference));
    PLFM_ASSIGN_OR_RETURN(auto bytes, readBlob(d));
    return FetchedManifest{std::move(bytes), ""};
  }
  auto index_bytes = readFile(dir_ + "/index.json");
  if (!index_bytes) {
    return Error(errc::kNotFound, "'" + dir_ + "' is not an OCI image layout (no index.json)")
        .with("layout", dir_);
  }
  PLFM_ASSIGN_OR_RETURN(auto doc, parseManifestDocument(*index_bytes, media::kOciIndex));
  if (!doc.index) return Error(errc::kBadManifest, dir_ + "/index.json is not an image index");
  const auto& manifests = doc.index->manifests;
  const Descriptor* chosen = nullptr;
  if (reference.empty()) {
    if (manifests.size() != 1) {
      return Error(errc::kInvalidArgument, "layout " + dir_ + " holds " +
                                               std::to_string(manifests.size()) +
                                               " images; name one with oci:DIR:TAG");
    }
    chosen = &manifests.front();
  } else {
    std::vector<std::string_view> tags;
    for (const auto& m : manifests) {
      if (m.ref_name == reference) {
        chosen = &m;
        break;
      }
      if (!m.ref_name.empty()) tags.push_back(m.ref_name);
    }
    if (chosen == nullptr) {
      std::string msg = "layout " + dir_ + " has no image tagged '" + std::string(reference) + "'";
      if (auto hint = closestMatch(reference, tags)) msg += "; did you mean '" + *hint + "'?";
      return Error(errc::kNotFound, msg).with("tag", std::string(reference));
    }
  }
  PLFM_ASSIGN_OR_RETURN(auto bytes, readBlob(chosen->digest));
  return FetchedManifest{std::move(bytes), chosen->media_type};
}

Result<void> OciLayoutSource::checkBlob(const Descriptor& blob) {
  if (::access((dir_ + "/blobs/sha256/" + blob.digest.hex()).c_str(), F_OK) == 0) return ok();
  return Error(errc::kNotFound, "blob " + blob.digest.str() + " is missing from layout " + dir_)
      .with("digest", blob.digest.str());
}

Result<void> OciLayoutSource::fetchBlob(const Descriptor& blob, BlobWriter& writer) {
  const std::string p = dir_ + "/blobs/sha256/" + blob.digest.hex();
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Error(errc::kNotFound, "blob " + blob.digest.str() + " is missing from layout " + dir_)
        .with("digest", blob.digest.str());
  }
  std::vector<char> buf(1 << 20);
  auto off = static_cast<off_t>(writer.offset());
  Result<void> r = ok();
  while (true) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), off);
    if (n < 0) {
      if (errno == EINTR) continue;
      r = errnoError("read " + p, errno);
      break;
    }
    if (n == 0) break;
    r = writer.write(buf.data(), static_cast<size_t>(n));
    if (!r) break;
    off += n;
  }
  ::close(fd);
  return r;
}

}  // namespace plfm::image
