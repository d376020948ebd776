#include "image/layer_applier.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "image/errors.h"
#include "image/fs_util.h"
#include "image/layer_stream.h"
#include "image/path_safety.h"
#include "plfm/core/log.h"

namespace plfm::image {

namespace {

constexpr int kMaxSymlinkHops = 40;
constexpr size_t kStreamBuffer = 1 << 20;

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveDeleter>;

std::string errnoText(int err) { return std::strerror(err); }

}  // namespace

struct LayerApplier::Entry {
  archive* ar = nullptr;
  archive_entry* ae = nullptr;
  LayerStream* stream = nullptr;
  std::string path;  // clean, as named in the tar
  std::string raw_name;
  // The stream ended right after this entry's data, without the padding to
  // 512 bytes and the end-of-archive blocks (see applyEntry).
  bool last_without_trailer = false;
};

LayerApplier::LayerApplier(std::string staging, UnpackLimits limits)
    : root_(std::move(staging)), limits_(limits) {
  euid_ = ::geteuid();
  egid_ = ::getegid();
  is_root_ = euid_ == 0;
}

Result<LayerStats> LayerApplier::apply(const std::string& blob_path, const Digest& layer,
                                       const std::optional<Digest>& diff_id) {
  layer_name_ = layer.str();
  this_layer_.clear();
  LayerStats stats;

  ArchivePtr raw(archive_read_new());
  archive_read_support_filter_gzip(raw.get());
  archive_read_support_filter_zstd(raw.get());
  archive_read_support_format_raw(raw.get());
  if (archive_read_open_filename(raw.get(), blob_path.c_str(), kStreamBuffer) != ARCHIVE_OK) {
    return Error(errc::kBadLayer,
                 "layer " + layer_name_ + ": cannot open: " + archive_error_string(raw.get()))
        .with("layer", layer_name_);
  }
  archive_entry* raw_entry = nullptr;
  if (archive_read_next_header(raw.get(), &raw_entry) != ARCHIVE_OK) {
    return Error(errc::kBadLayer,
                 "layer " + layer_name_ + ": cannot read: " + archive_error_string(raw.get()))
        .with("layer", layer_name_);
  }
  LayerStream stream(raw.get(), limits_, layer_name_, image_tar_bytes_);

  ArchivePtr tar(archive_read_new());
  archive_read_support_format_tar(tar.get());
  archive_read_support_format_gnutar(tar.get());
  if (archive_read_open(tar.get(), &stream, nullptr, LayerStream::readCallback, nullptr) !=
      ARCHIVE_OK) {
    if (auto e = stream.error()) return *e;
    return Error(errc::kBadLayer, "layer " + layer_name_ +
                                      " is not a tar archive: " + archive_error_string(tar.get()))
        .with("layer", layer_name_);
  }
  while (true) {
    archive_entry* ae = nullptr;
    const int r = archive_read_next_header(tar.get(), &ae);
    if (r == ARCHIVE_EOF) break;
    if (auto e = stream.error()) return *e;
    if (r < ARCHIVE_WARN) {
      return Error(errc::kBadLayer,
                   "layer " + layer_name_ + ": corrupt tar: " + archive_error_string(tar.get()))
          .with("layer", layer_name_);
    }
    if (++image_entries_ > limits_.max_entries) {
      return stream.limitError("too many entries", "max_entries", limits_.max_entries);
    }
    ++stats.entries;
    Entry e;
    e.ar = tar.get();
    e.ae = ae;
    e.stream = &stream;
    const char* name = archive_entry_pathname(ae);
    e.raw_name = name == nullptr ? "" : name;
    PLFM_ASSIGN_OR_RETURN(
        e.path, cleanEntryPath(e.raw_name, limits_.max_path_bytes).map_error([&](Error err) {
          return std::move(err).context("layer " + layer_name_);
        }));
    const Whiteout w = classifyWhiteout(e.path);
    if (w.kind != Whiteout::Kind::kNone) {
      ++stats.whiteouts;
      PLFM_TRY(applyWhiteout(e, w));
      continue;
    }
    auto applied = applyEntry(e);
    if (auto failed = stream.error()) return *failed;
    if (!applied) return applied.error();
    if (e.last_without_trailer) {
      log::warn("layer ends without tar padding and end-of-archive blocks; accepted",
                {{"layer", layer_name_}, {"entry", e.path}});
      break;  // libarchive cannot go on, and there is nothing more to read
    }
  }
  // The tar reader stops at the end-of-archive marker; hash the padding
  // after it too, since the diff_id covers the whole stream.
  while (true) {
    const void* chunk = nullptr;
    const ssize_t n = stream.next(&chunk);
    if (n < 0) return stream.error().value_or(Error(errc::kInternal, "layer stream failed"));
    if (n == 0) break;
  }
  stream.finish();
  stats.tar_bytes = stream.tarBytes();
  stats.compressed_bytes = static_cast<uint64_t>(archive_filter_bytes(raw.get(), -1));
  image_tar_bytes_ += stats.tar_bytes;
  const std::string got = stream.hexDigest();
  if (diff_id && got != diff_id->hex()) {
    return Error(errc::kDigestMismatch, "layer " + layer_name_ + " does not match its diff_id " +
                                            diff_id->str() +
                                            ": the uncompressed stream hashes to sha256:" + got)
        .with("layer", layer_name_)
        .with("diff_id", diff_id->str());
  }
  return stats;
}

Result<std::string> LayerApplier::resolveDir(const std::string& rel, bool create, const Entry& e) {
  if (rel.empty() || real_dirs_.count(rel) != 0) return rel;
  std::vector<std::string> todo = splitPath(rel);
  std::reverse(todo.begin(), todo.end());  // a stack: back() is the next component
  std::vector<std::string> cur;
  int hops = 0;
  bool all_real = true;
  while (!todo.empty()) {
    std::string comp = std::move(todo.back());
    todo.pop_back();
    if (comp == ".") continue;
    if (comp == "..") {
      if (cur.empty()) {
        return Error(errc::kPathEscape, "layer " + layer_name_ + ": entry '" + e.path +
                                            "' resolves through a symlink outside the rootfs")
            .with("layer", layer_name_)
            .with("entry", e.path);
      }
      cur.pop_back();
      continue;
    }
    cur.push_back(comp);
    const std::string path = joinPath(cur);
    if (real_dirs_.count(path) != 0) continue;
    const std::string h = host(path);
    struct stat st {};
    if (::lstat(h.c_str(), &st) != 0) {
      if (errno != ENOENT) return errnoError("stat " + h, errno);
      if (!create) return Error(errc::kNotFound, "missing");
      if (::mkdir(h.c_str(), 0755) != 0) return errnoError("mkdir " + h, errno);
      real_dirs_.insert(path);
      this_layer_.insert(path);
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      real_dirs_.insert(path);
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      if (++hops > kMaxSymlinkHops) {
        return Error(errc::kBadLayer,
                     "layer " + layer_name_ + ": too many symlinks resolving '" + e.path + "'")
            .with("layer", layer_name_);
      }
      std::string target(4096, '\0');
      const ssize_t n = ::readlink(h.c_str(), target.data(), target.size());
      if (n < 0) return errnoError("readlink " + h, errno);
      target.resize(static_cast<size_t>(n));
      all_real = false;
      cur.pop_back();
      if (!target.empty() && target.front() == '/') cur.clear();  // absolute: from the rootfs root
      auto parts = splitPath(target);
      todo.insert(todo.end(), parts.rbegin(), parts.rend());
      continue;
    }
    return Error(errc::kBadLayer, "layer " + layer_name_ + ": entry '" + e.path + "' needs '" +
                                      path + "' to be a directory, but it is a file")
        .with("layer", layer_name_);
  }
  std::string real = joinPath(cur);
  if (all_real) real_dirs_.insert(rel);
  return real;
}

void LayerApplier::forget(const std::string& real_rel) {
  auto drop = [&real_rel](auto& container) {
    container.erase(real_rel);
    const std::string prefix = real_rel + "/";
    auto it = container.lower_bound(prefix);
    while (it != container.end() && it->first.compare(0, prefix.size(), prefix) == 0) {
      it = container.erase(it);
    }
  };
  drop(fixups_);
  drop(dir_meta_);
  real_dirs_.erase(real_rel);
  const std::string prefix = real_rel + "/";
  auto it = real_dirs_.lower_bound(prefix);
  while (it != real_dirs_.end() && it->compare(0, prefix.size(), prefix) == 0) {
    it = real_dirs_.erase(it);
  }
}

Result<void> LayerApplier::removePath(const std::string& real_rel) {
  forget(real_rel);
  return removeAll(host(real_rel));
}

Result<void> LayerApplier::removeLowerChildren(const std::string& real_rel,
                                               const std::string& tar_rel) {
  const std::string h = host(real_rel);
  DIR* d = ::opendir(h.c_str());
  if (d == nullptr) return errnoError("opendir " + h, errno);
  std::vector<std::pair<std::string, bool>> children;
  while (dirent* de = ::readdir(d)) {
    const std::string_view n = de->d_name;
    if (n == "." || n == "..") continue;
    children.emplace_back(std::string(n), de->d_type == DT_DIR);
  }
  ::closedir(d);
  for (const auto& [name, is_dir] : children) {
    std::string child = real_rel;
    if (!child.empty()) child += '/';
    child += name;
    if (this_layer_.count(child) == 0) {
      PLFM_TRY(removePath(child));
    } else if (is_dir) {
      PLFM_TRY(removeLowerChildren(child, tar_rel));
    }
  }
  // Device nodes live only in fixups_; lower-layer ones go too.
  const std::string prefix = real_rel.empty() ? "" : real_rel + "/";
  for (auto it = fixups_.lower_bound(prefix); it != fixups_.end();) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    if (it->second.device != 0 && this_layer_.count(it->first) == 0) {
      it = fixups_.erase(it);
    } else {
      ++it;
    }
  }
  return ok();
}

Result<void> LayerApplier::applyWhiteout(const Entry& e, const Whiteout& w) {
  if (w.kind == Whiteout::Kind::kOtherMeta) return ok();
  if (w.kind == Whiteout::Kind::kOpaque) {
    PLFM_ASSIGN_OR_RETURN(std::string dir, resolveDir(w.target, true, e));
    this_layer_.insert(dir);
    return removeLowerChildren(dir, w.target);
  }
  auto parent = resolveDir(std::string(parentOf(w.target)), false, e);
  if (!parent) {
    if (parent.error().is(errc::kNotFound)) return ok();  // nothing to delete
    return parent.error();
  }
  const std::string base(baseOf(w.target));
  const std::string real = parent->empty() ? base : *parent + "/" + base;
  if (this_layer_.count(real) != 0) return ok();  // whiteouts only hide lower layers
  return removePath(real);
}

void LayerApplier::setOwner(int fd, const std::string& h, const std::string& rel, uint32_t uid,
                            uint32_t gid, bool is_link) {
  if (uid == euid_ && gid == egid_) return;
  int r = -1;
  if (is_root_) r = fd >= 0 ? ::fchown(fd, uid, gid) : ::lchown(h.c_str(), uid, gid);
  if (r == 0) return;
  (void)is_link;
  auto& f = fixups_[rel];
  f.uid = uid;
  f.gid = gid;
}

void LayerApplier::setXattrs(const std::string& h, const std::string& rel, Entry& e) {
  (void)h;  // never on the host: tenant xattrs go straight into the ext4
  if (archive_entry_xattr_reset(e.ae) == 0) return;
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(e.ae, &name, &value, &size) == ARCHIVE_OK) {
    if (name == nullptr) continue;
    const std::string_view n(name);
    XattrNameVerdict verdict = checkXattrName(n);
    if (verdict == XattrNameVerdict::kAllowed && size > kMaxXattrValueBytes) {
      log::warn("layer xattr dropped: value over " + std::to_string(kMaxXattrValueBytes) + " bytes",
                {{"layer", layer_name_}, {"entry", printable(rel)}, {"xattr", printable(n)}});
      ++dropped_xattrs_;
      continue;
    }
    if (verdict != XattrNameVerdict::kAllowed) {
      log::warn("layer xattr dropped: " + std::string(describe(verdict)),
                {{"layer", layer_name_}, {"entry", printable(rel)}, {"xattr", printable(n)}});
      ++dropped_xattrs_;
      continue;
    }
    auto& xattrs = fixups_[rel].xattrs;
    std::string v(static_cast<const char*>(value), size);
    auto same =
        std::find_if(xattrs.begin(), xattrs.end(), [&](const auto& kv) { return kv.first == n; });
    if (same != xattrs.end()) {
      same->second = std::move(v);
    } else {
      xattrs.emplace_back(std::string(n), std::move(v));
    }
  }
}

Result<void> LayerApplier::applyEntry(Entry& e) {
  archive_entry* ae = e.ae;
  const mode_t type = archive_entry_filetype(ae);
  const auto perm = static_cast<uint32_t>(archive_entry_perm(ae)) & 07777;
  const auto uid = static_cast<uint32_t>(archive_entry_uid(ae));
  const auto gid = static_cast<uint32_t>(archive_entry_gid(ae));
  const int64_t mtime = archive_entry_mtime(ae);
  const char* hardlink = archive_entry_hardlink(ae);

  if (e.path.empty()) {  // the root directory itself
    if (type == AE_IFDIR) dir_meta_[""] = DirMeta{perm, uid, gid, mtime};
    return ok();
  }
  PLFM_ASSIGN_OR_RETURN(std::string parent, resolveDir(std::string(parentOf(e.path)), true, e));
  const std::string base(baseOf(e.path));
  const std::string rel = parent.empty() ? base : parent + "/" + base;
  const std::string h = host(rel);

  // Whatever was at this path before goes, except a directory that a new
  // directory entry merges into.
  fixups_.erase(rel);
  struct stat st {};
  if (::lstat(h.c_str(), &st) == 0) {
    if (!(S_ISDIR(st.st_mode) && type == AE_IFDIR && hardlink == nullptr)) {
      PLFM_TRY(removePath(rel));
    }
  } else if (errno != ENOENT) {
    return errnoError("stat " + h, errno);
  }
  this_layer_.insert(rel);

  if (hardlink != nullptr) {
    PLFM_ASSIGN_OR_RETURN(
        std::string target_clean,
        cleanEntryPath(hardlink, limits_.max_path_bytes).map_error([&](Error err) {
          return std::move(err).context("layer " + layer_name_);
        }));
    PLFM_ASSIGN_OR_RETURN(
        std::string tparent,
        resolveDir(std::string(parentOf(target_clean)), false, e).map_error([&](Error err) {
          if (!err.is(errc::kNotFound)) return err;
          return Error(errc::kBadLayer, "layer " + layer_name_ + ": hardlink '" + e.path +
                                            "' points at missing '" + target_clean + "'");
        }));
    const std::string tbase(baseOf(target_clean));
    const std::string trel = tparent.empty() ? tbase : tparent + "/" + tbase;
    if (auto f = fixups_.find(trel); f != fixups_.end()) {
      fixups_[rel] = f->second;  // a device node, or ownership kept for the ext4
      if (f->second.device != 0) return ok();
    }
    if (::link(host(trel).c_str(), h.c_str()) != 0) {
      return Error(errc::kBadLayer, "layer " + layer_name_ + ": hardlink '" + e.path + "' -> '" +
                                        target_clean + "': " + errnoText(errno))
          .with("layer", layer_name_);
    }
    return ok();
  }

  switch (type) {
    case AE_IFDIR: {
      if (::mkdir(h.c_str(), 0755) != 0 && errno != EEXIST) return errnoError("mkdir " + h, errno);
      real_dirs_.insert(rel);
      dir_meta_[rel] = DirMeta{perm, uid, gid, mtime};
      setXattrs(h, rel, e);
      return ok();
    }
    case AE_IFREG: {
      // Readable by us until mkfs has copied it; the real mode goes on below.
      const int fd = ::open(h.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (fd < 0) return errnoError("create " + h, errno);
      const void* buf = nullptr;
      size_t len = 0;
      la_int64_t off = 0;
      la_int64_t end = 0;  // of the data written so far
      int r = ARCHIVE_OK;
      Result<void> wr = ok();
      while ((r = archive_read_data_block(e.ar, &buf, &len, &off)) == ARCHIVE_OK) {
        if (::lseek(fd, off, SEEK_SET) < 0) {
          wr = errnoError("seek " + h, errno);
          break;
        }
        wr = writeAll(fd, static_cast<const char*>(buf), len, h);
        if (!wr) break;
        end = std::max<la_int64_t>(end, off + static_cast<la_int64_t>(len));
      }
      // umoci insert (0.4.x) writes layers whose stream stops right after
      // the last file's data: no padding, no end-of-archive blocks. Go's
      // archive/tar (umoci, containerd, Docker) reads that as a clean end, so
      // we do too, but only when every byte of the entry is there and the
      // stream is really over; the layer digest and diff_id still cover it.
      if (wr && r != ARCHIVE_EOF && end >= archive_entry_size(ae) && e.stream->atEnd() &&
          !e.stream->error()) {
        e.last_without_trailer = true;
        r = ARCHIVE_EOF;
      }
      if (wr && r != ARCHIVE_EOF) {
        wr = Error(errc::kBadLayer, "layer " + layer_name_ + ": reading '" + e.path +
                                        "': " + archive_error_string(e.ar))
                 .with("layer", layer_name_);
      }
      const auto size = archive_entry_size(ae);
      if (wr && ::ftruncate(fd, size) != 0) wr = errnoError("truncate " + h, errno);
      if (wr) {
        setOwner(fd, h, rel, uid, gid, false);
        uint32_t host_mode = perm;
        if (!is_root_ && (perm & 0400) == 0) {
          host_mode |= 0400;  // mkfs must be able to read it
          fixups_[rel].mode = S_IFREG | perm;
        }
        if (::fchmod(fd, host_mode) != 0) wr = errnoError("chmod " + h, errno);
        const timespec times[2] = {{mtime, 0}, {mtime, 0}};
        ::futimens(fd, times);
      }
      ::close(fd);
      PLFM_TRY(wr);
      setXattrs(h, rel, e);
      return ok();
    }
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(ae);
      if (target == nullptr) target = "";
      if (::symlink(target, h.c_str()) != 0) return errnoError("symlink " + h, errno);
      setOwner(-1, h, rel, uid, gid, true);
      const timespec times[2] = {{mtime, 0}, {mtime, 0}};
      ::utimensat(AT_FDCWD, h.c_str(), times, AT_SYMLINK_NOFOLLOW);
      setXattrs(h, rel, e);
      return ok();
    }
    case AE_IFCHR:
    case AE_IFBLK: {
      // Never on the host: the fixup pass creates it inside the ext4.
      auto& f = fixups_[rel];
      f.device = type == AE_IFCHR ? 'c' : 'b';
      f.major = static_cast<uint32_t>(archive_entry_rdevmajor(ae));
      f.minor = static_cast<uint32_t>(archive_entry_rdevminor(ae));
      f.mode = (type == AE_IFCHR ? S_IFCHR : S_IFBLK) | perm;
      f.uid = uid;
      f.gid = gid;
      return ok();
    }
    case AE_IFIFO: {
      if (::mkfifo(h.c_str(), perm) != 0) return errnoError("mkfifo " + h, errno);
      setOwner(-1, h, rel, uid, gid, false);
      ::chmod(h.c_str(), perm);
      return ok();
    }
    default:
      return ok();  // sockets and unknown types carry no content
  }
}

Result<void> LayerApplier::finish() {
  // Children sort after their parents; going backwards sets a child's times
  // before anything touches the parent again (a reverse walk, hence no
  // range-for).
  // NOLINTNEXTLINE(modernize-loop-convert)
  for (auto it = dir_meta_.rbegin(); it != dir_meta_.rend(); ++it) {
    const std::string h = host(it->first);
    const DirMeta& m = it->second;
    setOwner(-1, h, it->first, m.uid, m.gid, false);
    uint32_t host_mode = m.mode;
    if (!is_root_ && (m.mode & 0500) != 0500) {
      host_mode |= 0500;
      fixups_[it->first].mode = S_IFDIR | m.mode;
    }
    if (::chmod(h.c_str(), host_mode) != 0) return errnoError("chmod " + h, errno);
    const timespec times[2] = {{m.mtime, 0}, {m.mtime, 0}};
    ::utimensat(AT_FDCWD, h.c_str(), times, AT_SYMLINK_NOFOLLOW);
  }
  return ok();
}

}  // namespace plfm::image
