#include "datasets/idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

namespace polytask::datasets {

namespace fs = std::filesystem;

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail(path, ": is a directory, not a data file");
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) fail(path, ": cannot open: ", std::strerror(errno));
  return f;
}

std::vector<uint8_t> read_gzip(const std::string& path, std::FILE* raw) {
  // gzip's trailer holds the uncompressed size mod 2^32: a good first guess for the buffer, so a
  // single-member file is read without reallocating. It can claim anything, so the guess is
  // bounded by what the file can hold (gzip_initial_capacity); the buffer grows with the data.
  uint64_t trailer_claim = 0, compressed = 0;
  uint8_t trailer[4];
  if (std::fseek(raw, -4, SEEK_END) == 0 && std::fread(trailer, 1, 4, raw) == 4)
    trailer_claim = uint64_t(trailer[0]) | uint64_t(trailer[1]) << 8 |
                    uint64_t(trailer[2]) << 16 | uint64_t(trailer[3]) << 24;
  if (std::fseek(raw, 0, SEEK_END) == 0)
    if (const long size = std::ftell(raw); size > 0) compressed = uint64_t(size);
  const size_t guess = gzip_initial_capacity(compressed, trailer_claim);
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) fail(path, ": cannot open as gzip: ", std::strerror(errno));
  gzbuffer(gz, 1u << 18);
  std::vector<uint8_t> out(std::max<size_t>(guess, 1));
  size_t used = 0;
  for (;;) {
    if (used == out.size()) out.resize(out.size() * 2);
    const size_t room = std::min<size_t>(out.size() - used, size_t(1) << 30);
    const int got = gzread(gz, out.data() + used, unsigned(room));
    if (got <= 0) break;
    used += size_t(got);
  }
  int code = Z_OK;
  std::string message = gzerror(gz, &code);
  // zlib's message starts with the path, which ours names already.
  if (message.rfind(path + ": ", 0) == 0) message.erase(0, path.size() + 2);
  gzclose_r(gz);
  // zlib reports a stream cut short as Z_BUF_ERROR without failing gzread, so ask explicitly.
  if (code == Z_BUF_ERROR)
    fail(path, ": truncated gzip stream: it ends after ", used,
         " decompressed bytes (the compressed file is cut short)");
  if (code != Z_OK)
    fail(path, ": damaged gzip stream after ", used, " decompressed bytes: ", message);
  out.resize(used);
  return out;
}

}  // namespace

size_t gzip_initial_capacity(uint64_t compressed_bytes, uint64_t trailer_claim) {
  // Deflate expands at most 1032:1 (a 258-byte match per 2 bits), so a file can hold no more;
  // and past 256 MiB the buffer grows only as data really arrives.
  constexpr uint64_t kDeflateMaxRatio = 1032, kFloor = uint64_t(1) << 16,
                     kCeiling = uint64_t(1) << 28;
  const uint64_t possible = compressed_bytes * kDeflateMaxRatio;
  return size_t(std::min({std::max(trailer_claim, kFloor), possible, kCeiling}) + 1);
}

namespace {

uint32_t big_endian_u32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

std::string hex32(uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", v);
  return text;
}

// The validated header of an IDX file of uint8 data: dims and where the payload starts.
struct IdxHeader {
  std::vector<int64_t> dims;
  size_t payload_offset = 0;
  size_t payload_bytes = 0;
};

// `item` is "image" or "label", for messages.
IdxHeader parse_header(const FileBytes& file, const std::string& path, int rank,
                       const std::string& item) {
  const std::string kind = item + "s";
  const auto& b = file.bytes;
  const uint32_t expected_magic = 0x800u | uint32_t(rank);
  const char* stream = file.gzip ? " (decompressed)" : "";
  if (b.size() < 4)
    fail(path, ": ", b.size(), " bytes", stream, ", too short for an IDX header (4-byte magic ",
         hex32(expected_magic), " at byte offset 0)");
  const uint32_t magic = big_endian_u32(b.data());
  if (magic != expected_magic) {
    std::string hint;
    if (magic == (0x800u | uint32_t(4 - rank)))
      hint = rank == 3 ? "; this is an IDX label file" : "; this is an IDX image file";
    else if ((magic >> 16) != 0)
      hint = "; not an IDX file";
    else if (((magic >> 8) & 0xff) != 0x08)
      hint = cat("; element type 0x", hex32((magic >> 8) & 0xff).substr(8),
                 " is not unsigned byte (0x08)");
    else
      hint = cat("; it declares ", magic & 0xff, " dimensions");
    fail(path, ": bad magic number ", hex32(magic), " at byte offset 0: expected ",
         hex32(expected_magic), " (IDX ", kind, ": unsigned bytes, ", rank, " dimension",
         rank == 1 ? "" : "s", ")", hint);
  }
  IdxHeader h;
  h.payload_offset = size_t(4 + 4 * rank);
  if (b.size() < h.payload_offset)
    fail(path, ": truncated header: ", h.payload_offset, " bytes needed for ", rank,
         " dimension sizes, the file has ", b.size(), stream);
  uint64_t total = 1;
  for (int d = 0; d < rank; ++d) {
    const uint32_t size = big_endian_u32(b.data() + 4 + 4 * d);
    if (size == 0) fail(path, ": dimension ", d, " is 0 (at byte offset ", 4 + 4 * d, ")");
    // Larger payloads than any real data set: more likely a corrupt header than a huge file.
    if (size > (uint64_t(1) << 40) / total)
      fail(path, ": implausible dimension ", size, " at byte offset ", 4 + 4 * d,
           " (the header would describe more than 2^40 bytes)");
    total *= size;
    h.dims.push_back(int64_t(size));
  }
  h.payload_bytes = size_t(total);
  const size_t expected = h.payload_offset + h.payload_bytes;
  std::string what = cat(h.dims[0], " ", kind);
  if (rank == 3) what += cat(" of ", h.dims[1], "x", h.dims[2]);
  if (b.size() < expected) {
    const size_t per_row = h.payload_bytes / size_t(h.dims[0]);
    fail(path, ": truncated: the header promises ", what, " (", expected, " bytes) but the file",
         stream, " has ", b.size(), " bytes; the data ends at byte offset ", b.size(),
         ", inside ", item, " ", (b.size() - h.payload_offset) / per_row);
  }
  if (b.size() > expected)
    fail(path, ": ", b.size() - expected, " unexpected trailing bytes after the payload, from ",
         "byte offset ", expected, stream, "; the header promises ", what, " (", expected,
         " bytes)");
  return h;
}

int64_t rows_to_keep(int64_t count, int64_t limit) {
  return limit > 0 ? std::min(count, limit) : count;
}

// Exact pixel / 255 for every byte value, so the conversion loop is one load per pixel.
const std::array<float, 256>& pixel_table() {
  static const auto table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[size_t(v)] = float(v) / 255.0f;
    return t;
  }();
  return table;
}

// A file that exists as a regular file (symlinks followed).
bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

}  // namespace

FileBytes read_file_bytes(const std::string& path) {
  File f = open_file(path);
  FileBytes out;
  uint8_t magic[2] = {0, 0};
  const size_t head = std::fread(magic, 1, 2, f.get());
  if (head == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    out.gzip = true;
    out.bytes = read_gzip(path, f.get());
    return out;
  }
  if (std::fseek(f.get(), 0, SEEK_END) != 0) fail(path, ": cannot seek: ", std::strerror(errno));
  const long size = std::ftell(f.get());
  if (size < 0) fail(path, ": cannot tell its size: ", std::strerror(errno));
  std::rewind(f.get());
  out.bytes.resize(size_t(size));
  const size_t got = std::fread(out.bytes.data(), 1, out.bytes.size(), f.get());
  if (got != out.bytes.size())
    fail(path, ": read error at byte offset ", got, " of ", size, ": ", std::strerror(errno));
  return out;
}

namespace {

// A file's first `limit` rows and its full count.
struct Loaded {
  Tensor tensor;
  int64_t total = 0;
};

Loaded load_images(const std::string& path, int64_t limit) {
  const FileBytes file = read_file_bytes(path);
  const IdxHeader h = parse_header(file, path, 3, "image");
  const int64_t n = rows_to_keep(h.dims[0], limit);
  Tensor images = Tensor::empty({n, 1, h.dims[1], h.dims[2]});
  const auto& table = pixel_table();
  const uint8_t* src = file.bytes.data() + h.payload_offset;
  float* dst = images.data<float>();
  const int64_t count = images.numel();
  for (int64_t i = 0; i < count; ++i) dst[i] = table[src[i]];
  return {images, h.dims[0]};
}

Loaded load_labels(const std::string& path, int64_t limit) {
  const FileBytes file = read_file_bytes(path);
  const IdxHeader h = parse_header(file, path, 1, "label");
  const int64_t n = rows_to_keep(h.dims[0], limit);
  Tensor labels = Tensor::empty({n}, DType::I32);
  const uint8_t* src = file.bytes.data() + h.payload_offset;
  int32_t* dst = labels.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  return {labels, h.dims[0]};
}

}  // namespace

Tensor read_idx_images(const std::string& path, int64_t limit) {
  return load_images(path, limit).tensor;
}

Tensor read_idx_labels(const std::string& path, int64_t limit) {
  return load_labels(path, limit).tensor;
}

std::optional<IdxFiles> find_idx_files(const std::string& dir) {
  struct Wanted {
    const char* role;
    std::vector<std::string> suffixes;  // the file name ends with one of these (before .gz)
    std::string* found;
  };
  IdxFiles files;
  std::vector<Wanted> wanted = {
      {"train-images-idx3-ubyte", {"train-images-idx3-ubyte", "train-images.idx3-ubyte"},
       &files.train_images},
      {"train-labels-idx1-ubyte", {"train-labels-idx1-ubyte", "train-labels.idx1-ubyte"},
       &files.train_labels},
      {"t10k-images-idx3-ubyte",
       {"t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte", "test-images-idx3-ubyte"},
       &files.test_images},
      {"t10k-labels-idx1-ubyte",
       {"t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte", "test-labels-idx1-ubyte"},
       &files.test_labels},
  };
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (is_file(entry.path())) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());

  int found = 0;
  std::string missing;
  for (auto& w : wanted) {
    // Candidates by stem (the name without .gz); a raw copy beats its .gz, being faster to read.
    std::map<std::string, std::string> by_stem;
    for (const auto& name : names) {
      const bool gz = name.size() > 3 && name.ends_with(".gz");
      const std::string stem = gz ? name.substr(0, name.size() - 3) : name;
      for (const auto& suffix : w.suffixes)
        if (stem.ends_with(suffix) &&
            (stem.size() == suffix.size() || stem[stem.size() - suffix.size() - 1] == '-'))
          if (!gz || !by_stem.count(stem)) by_stem[stem] = name;
    }
    if (by_stem.size() > 1) {
      std::string list;
      for (const auto& [stem, name] : by_stem) list += (list.empty() ? "" : ", ") + name;
      fail(dir, ": several files could be the ", w.role, " file (", list,
           "); keep one set per directory");
    }
    if (by_stem.empty()) {
      missing += cat(missing.empty() ? "" : ", ", w.role, "[.gz]");
      continue;
    }
    *w.found = (fs::path(dir) / by_stem.begin()->second).string();
    ++found;
  }
  if (found == 0) return std::nullopt;
  if (!missing.empty())
    fail(dir, ": incomplete IDX data set: missing ", missing, " (found ", found, " of the 4 files)");
  return files;
}

Dataset load_idx_split(const std::string& images_path, const std::string& labels_path,
                       int64_t limit) {
  // Counts are compared on the headers, not on the (possibly limited) tensors.
  const Loaded images = load_images(images_path, limit);
  const Loaded labels = load_labels(labels_path, limit);
  if (images.total != labels.total)
    fail(images_path, " holds ", images.total, " images but ", labels_path, " holds ",
         labels.total, " labels");
  return Dataset{{{"image", images.tensor}}, {{"class", labels.tensor}}};
}

}  // namespace polytask::datasets
