#include "image/ext4_fixups.h"

// libext2fs is C; its headers are included as system headers (CMake) so that
// their casts do not trip -Werror.
extern "C" {
#include <et/com_err.h>
}
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include <cstring>
#include <ctime>
#include <string_view>

#include "image/path_safety.h"

namespace plfm::image {

namespace {

Error ext2Error(std::string_view what, const std::string& rel, errcode_t err) {
  return Error(errc::kIo, std::string(what) + " '/" + printable(rel) +
                              "' in the ext4: " + ::error_message(err))
      .with("path", printable(rel));
}

// Closes (and so flushes) the filesystem once, whichever way we leave.
class Fs {
 public:
  Fs() = default;
  Fs(const Fs&) = delete;
  Fs& operator=(const Fs&) = delete;
  ~Fs() {
    if (fs_ != nullptr) ::ext2fs_close_free(&fs_);
  }
  ext2_filsys* out() { return &fs_; }
  ext2_filsys get() const { return fs_; }
  errcode_t close() { return ::ext2fs_close_free(&fs_); }

 private:
  ext2_filsys fs_ = nullptr;
};

Result<ext2_ino_t> lookupIn(ext2_filsys fs, ext2_ino_t dir, std::string_view name,
                            const std::string& rel) {
  ext2_ino_t ino = 0;
  const errcode_t err =
      ::ext2fs_lookup(fs, dir, name.data(), static_cast<int>(name.size()), nullptr, &ino);
  if (err != 0) return ext2Error("looking up", rel, err);
  return ino;
}

// The directory that holds `rel`, walked from the root; symlinks are never
// followed, so a fixup cannot land outside the path the layer named.
Result<ext2_ino_t> parentDir(ext2_filsys fs, const std::string& rel) {
  ext2_ino_t dir = EXT2_ROOT_INO;
  for (const auto& comp : splitPath(parentOf(rel))) {
    PLFM_ASSIGN_OR_RETURN(dir, lookupIn(fs, dir, comp, rel));
    ext2_inode inode{};
    if (const errcode_t err = ::ext2fs_read_inode(fs, dir, &inode); err != 0) {
      return ext2Error("reading", rel, err);
    }
    if (!LINUX_S_ISDIR(inode.i_mode)) {
      return Error(errc::kFailedPrecondition,
                   "ext4 fixup for '/" + printable(rel) + "': a parent is not a directory")
          .with("path", printable(rel));
    }
  }
  return dir;
}

Result<ext2_ino_t> makeDeviceNode(ext2_filsys fs, ext2_ino_t dir, const std::string& rel,
                                  const InodeFixup& f) {
  const std::string name(baseOf(rel));
  const bool chr = f.device == 'c';
  const uint32_t type = chr ? LINUX_S_IFCHR : LINUX_S_IFBLK;
  ext2_ino_t ino = 0;
  if (const errcode_t err =
          ::ext2fs_new_inode(fs, dir, static_cast<int>(type | 0600), nullptr, &ino);
      err != 0) {
    return ext2Error("allocating an inode for", rel, err);
  }
  const int ft = chr ? EXT2_FT_CHRDEV : EXT2_FT_BLKDEV;
  errcode_t err = ::ext2fs_link(fs, dir, name.c_str(), ino, ft);
  if (err == EXT2_ET_DIR_NO_SPACE) {
    err = ::ext2fs_expand_dir(fs, dir);
    if (err == 0) err = ::ext2fs_link(fs, dir, name.c_str(), ino, ft);
  }
  if (err != 0) return ext2Error("linking", rel, err);
  ::ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
  ext2_inode inode{};
  inode.i_mode = static_cast<uint16_t>(type | 0600);
  const auto now = static_cast<uint32_t>(::time(nullptr));
  inode.i_atime = inode.i_ctime = inode.i_mtime = now;
  // The old and the new device encodings, as the kernel reads them
  // (fs/ext4/inode.c, ext4_set_inode / old_decode_dev, new_decode_dev).
  if (f.major < 256 && f.minor < 256) {
    inode.i_block[0] = f.major * 256 + f.minor;
  } else {
    inode.i_block[1] = (f.minor & 0xff) | (f.major << 8) | ((f.minor & ~0xffU) << 12);
  }
  inode.i_links_count = 1;
  if (err = ::ext2fs_write_new_inode(fs, ino, &inode); err != 0) {
    return ext2Error("writing", rel, err);
  }
  return ino;
}

Result<void> setAttributes(ext2_filsys fs, ext2_ino_t ino, const std::string& rel,
                           const InodeFixup& f) {
  if (!f.mode && !f.uid && !f.gid) return ok();
  ext2_inode inode{};
  if (const errcode_t err = ::ext2fs_read_inode(fs, ino, &inode); err != 0) {
    return ext2Error("reading", rel, err);
  }
  if (f.mode) {
    if ((*f.mode & LINUX_S_IFMT) != (inode.i_mode & LINUX_S_IFMT)) {
      return Error(errc::kFailedPrecondition,
                   "ext4 fixup for '/" + printable(rel) + "': file type differs from the layer's")
          .with("path", printable(rel));
    }
    inode.i_mode = static_cast<uint16_t>(*f.mode & 0xffff);
  }
  if (f.uid) {
    inode.i_uid = static_cast<uint16_t>(*f.uid & 0xffff);
    ext2fs_set_i_uid_high(inode, static_cast<uint16_t>(*f.uid >> 16));
  }
  if (f.gid) {
    inode.i_gid = static_cast<uint16_t>(*f.gid & 0xffff);
    ext2fs_set_i_gid_high(inode, static_cast<uint16_t>(*f.gid >> 16));
  }
  if (const errcode_t err = ::ext2fs_write_inode(fs, ino, &inode); err != 0) {
    return ext2Error("writing", rel, err);
  }
  return ok();
}

Result<void> setXattrs(ext2_filsys fs, ext2_ino_t ino, const std::string& rel,
                       const InodeFixup& f) {
  if (f.xattrs.empty()) return ok();
  ext2_xattr_handle* h = nullptr;
  errcode_t err = ::ext2fs_xattrs_open(fs, ino, &h);
  if (err == 0) err = ::ext2fs_xattrs_read(h);
  for (const auto& [name, value] : f.xattrs) {
    if (err != 0) break;
    // The layer applier admits only checkXattrName names; check again here,
    // where the name becomes part of the image.
    if (checkXattrName(name) != XattrNameVerdict::kAllowed) {
      ::ext2fs_xattrs_close(&h);
      return Error(errc::kInvalidArgument, "ext4 fixup for '/" + printable(rel) + "': xattr '" +
                                               printable(name) + "' " +
                                               std::string(describe(checkXattrName(name))))
          .with("path", printable(rel));
    }
    err = ::ext2fs_xattr_set(h, name.c_str(), value.data(), value.size());
  }
  const errcode_t close_err = h != nullptr ? ::ext2fs_xattrs_close(&h) : 0;
  if (err == 0) err = close_err;
  if (err != 0) return ext2Error("setting extended attributes of", rel, err);
  return ok();
}

}  // namespace

Result<uint64_t> applyExt4Fixups(const std::string& image,
                                 const std::map<std::string, InodeFixup>& fixups) {
  if (fixups.empty()) return uint64_t{0};
  Fs fs;
  errcode_t err = ::ext2fs_open(image.c_str(), EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0,
                                unix_io_manager, fs.out());
  if (err != 0) return Error(errc::kIo, "opening the ext4 " + image + ": " + ::error_message(err));
  if (err = ::ext2fs_read_bitmaps(fs.get()); err != 0) {
    return Error(errc::kIo, "reading the ext4 bitmaps of " + image + ": " + ::error_message(err));
  }
  uint64_t applied = 0;
  for (const auto& [rel, f] : fixups) {
    ext2_ino_t ino = EXT2_ROOT_INO;
    if (rel.empty()) {
      if (f.device != 0) return Error(errc::kInvalidArgument, "ext4 fixup: the root as a device");
    } else if (f.device != 0) {
      PLFM_ASSIGN_OR_RETURN(const ext2_ino_t dir, parentDir(fs.get(), rel));
      PLFM_ASSIGN_OR_RETURN(ino, makeDeviceNode(fs.get(), dir, rel, f));
    } else {
      PLFM_ASSIGN_OR_RETURN(const ext2_ino_t dir, parentDir(fs.get(), rel));
      PLFM_ASSIGN_OR_RETURN(ino, lookupIn(fs.get(), dir, baseOf(rel), rel));
    }
    PLFM_TRY(setAttributes(fs.get(), ino, rel, f));
    PLFM_TRY(setXattrs(fs.get(), ino, rel, f));
    ++applied;
  }
  if (err = fs.close(); err != 0) {
    return Error(errc::kIo, "writing the ext4 " + image + ": " + ::error_message(err));
  }
  return applied;
}

}  // namespace plfm::image
