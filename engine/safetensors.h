// The safetensors file format (https://github.com/huggingface/safetensors), so checkpoints open
// in Python with `safetensors.numpy.load_file`:
//
//   [u64 little-endian N] [N bytes of JSON header, space-padded to a multiple of 8] [buffer]
//   header: {"__metadata__": {"key": "value", ...},
//            "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//
// Offsets are relative to the buffer start. The reader is as strict as the reference Rust
// implementation: the tensors must tile the buffer exactly (no gaps, no overlaps), every size
// must equal dtype size × elements, and anything else in the header is an error. Every error is
// one polytask::Error line naming the file and what is wrong (with the byte offset in the file
// where there is one).
//
// Writes are atomic (AtomicFile): a crash or a full disk leaves either the old file or the new
// one, never a half-written mixture.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace polytask {

using SafetensorsMetadata = std::map<std::string, std::string>;

// A file written to "<path>.tmp-<pid>" in the target's directory and renamed over `path` by
// commit(), after fflush + fsync; the directory is fsynced after the rename. Any failure
// (creating the temporary, a short write, a full disk, fsync, rename) throws an Error naming
// `path` and the errno text, and removes the temporary file: the previous `path`, if any, is
// untouched. Not committing (an exception while writing) also removes the temporary.
// Two threads of one process must not write the same path at once (they share the name).
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

 private:
  [[noreturn]] void fail_with_errno(const std::string& what, int error);
  void discard() noexcept;

  std::string path_, temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// fsync(2) of a directory, so that the renames and new entries in it survive a power loss.
// Throws naming `dir` (file systems that cannot sync directories are accepted).
void sync_directory(const std::string& dir);

// Writes `tensors` (any device: device tensors are copied to the host one at a time) in the
// given order, with string metadata ("__metadata__", omitted when empty), atomically. Names must
// be unique, non-empty and not "__metadata__". F32/F64/I32 map to "F32"/"F64"/"I32".
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const SafetensorsMetadata& metadata = {});

// The safetensors dtype string of a polytask dtype ("F32", "F64", "I32").
const char* safetensors_dtype(DType dtype);

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // "F32", "F16", "I64", ... (any dtype of the format)
  std::vector<int64_t> shape;   // may be empty (a scalar) or contain zeros
  uint64_t begin = 0, end = 0;  // byte range in the buffer
};

// A whole file read and validated. Entries are in header order.
class SafetensorsFile {
 public:
  static SafetensorsFile read(const std::string& path);
  // Parses `bytes` as the contents of a file called `label` (for messages).
  static SafetensorsFile parse(std::string bytes, const std::string& label);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsMetadata& metadata() const { return metadata_; }
  // nullptr when absent.
  const SafetensorsEntry* find(const std::string& name) const;
  // The metadata value of `key`; throws "<path>: metadata has no key '<key>'" when absent.
  const std::string& metadata_value(const std::string& key) const;

  // A CPU tensor holding a copy of tensor `name`. Throws naming the file when the tensor is
  // missing, its dtype has no polytask counterpart (only F32, F64 and I32 do) or its rank
  // exceeds Shape::kMaxRank.
  Tensor tensor(const std::string& name) const;
  // The tensor's raw little-endian bytes.
  const char* data(const SafetensorsEntry& entry) const;

 private:
  std::string path_;
  std::string bytes_;  // the whole file
  size_t buffer_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  SafetensorsMetadata metadata_;
};

}  // namespace polytask
