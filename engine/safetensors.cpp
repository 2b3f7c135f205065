#include "engine/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "engine/checkpoint_layout.h"
#include "kernels/error.h"

namespace polytask {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; big-endian hosts would need byte swaps");

namespace {

// The reference implementation refuses larger headers; so do we, before allocating anything.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeInfo {
  const char* name;
  uint64_t size;
};
// Every byte-sized dtype of the format. (Sub-byte types such as F4 are rejected as unsupported.)
constexpr DTypeInfo kDTypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
    {"F32", 4},  {"F64", 8}, {"I64", 8}, {"U64", 8},     {"C64", 8},
};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const DTypeInfo& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

// A string as a JSON literal: also how names appear in messages, so a message stays one line.
std::string json_quote(const std::string& s) {
  static constexpr char kSpecial[] = "\"\\\b\f\n\r\t", kLetter[] = "\"\\bfnrt";
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const char* special = c ? std::strchr(kSpecial, ch) : nullptr;
    if (special) {
      out += '\\';
      out += kLetter[special - kSpecial];
    } else if (c < 0x20) {
      out += cat("\\u00", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += cat(i ? ", " : "", shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::string errno_text(int error) { return std::strerror(error); }

// A strict parser for exactly the safetensors header grammar: one object whose values are
// tensor entries {"dtype": str, "shape": [uint...], "data_offsets": [uint, uint]} or, under
// "__metadata__", an object of strings. `base` is the file offset of text[0], for messages.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, size_t base, const std::string& label)
      : text_(text), base_(base), label_(label) {}

  void parse(std::vector<SafetensorsEntry>& entries, SafetensorsMetadata& metadata) {
    check_utf8();
    if (peek() != '{') error("the header must start with '{'");
    bool seen_metadata = false;
    std::set<std::string> names;
    parse_object("after a header entry", [&](std::string key, size_t key_at) {
      if (key == "__metadata__") {
        if (seen_metadata) error_at(key_at, "duplicate key \"__metadata__\"");
        seen_metadata = true;
        parse_metadata(metadata);
      } else {
        if (!names.insert(key).second) error_at(key_at, "duplicate tensor name " + json_quote(key));
        entries.push_back(parse_entry(std::move(key)));
      }
    });
    skip_ws();
    if (pos_ != text_.size())
      error("unexpected " + describe_next() +
            " after the header object (only padding spaces may follow)");
  }

 private:
  [[noreturn]] void error_at(size_t at, const std::string& what) const {
    fail(label_, ": invalid header: ", what, " (at byte ", base_ + at, ")");
  }
  [[noreturn]] void error(const std::string& what) const { error_at(pos_, what); }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool consume(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!consume(c)) error(cat("expected '", c, "', got ", describe_next()));
  }
  std::string describe_next() const {
    if (pos_ >= text_.size()) return "the end of the header";
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c < 0x20 || c >= 0x7f) return cat("byte 0x", std::hex, int(c));
    return cat("'", text_[pos_], "'");
  }
  void skip_ws() {
    while (pos_ < text_.size() && text_[pos_] && std::strchr(" \t\n\r", text_[pos_])) ++pos_;
  }

  // Items separated by ',' up to `close`; the opening bracket is already consumed.
  template <class F>
  void parse_items(char close, const char* where, F&& item) {
    skip_ws();
    if (consume(close)) return;
    for (;;) {
      skip_ws();
      item();
      skip_ws();
      if (consume(',')) continue;
      if (consume(close)) return;
      error(cat("expected ',' or '", close, "' ", where, ", got ", describe_next()));
    }
  }
  // {"key": value, ...}; member(key, key_at) parses each value.
  template <class F>
  void parse_object(const char* where, F&& member) {
    expect('{');
    parse_items('}', where, [&] {
      const size_t key_at = pos_;
      std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      member(std::move(key), key_at);
    });
  }

  // The header is text: a byte sequence that is not UTF-8 is rejected up front.
  void check_utf8() const {
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < text_.size();) {
      const auto c = static_cast<unsigned char>(text_[i]);
      const size_t extra = c < 0x80             ? 0
                           : (c & 0xE0) == 0xC0 ? 1
                           : (c & 0xF0) == 0xE0 ? 2
                           : (c & 0xF8) == 0xF0 ? 3
                                                : 4;
      if (extra == 4 || i + extra >= text_.size())
        error_at(i, "the header is not valid UTF-8");
      uint32_t cp = c & (0x7Fu >> (extra ? extra + 1 : 0));
      for (size_t k = 1; k <= extra; ++k) {
        const auto d = static_cast<unsigned char>(text_[i + k]);
        if ((d & 0xC0) != 0x80) error_at(i, "the header is not valid UTF-8");
        cp = (cp << 6) | (d & 0x3Fu);
      }
      if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        error_at(i, "the header is not valid UTF-8");
      i += extra + 1;
    }
  }

  uint32_t hex4() {
    uint32_t v = 0;
    const char* begin = text_.data() + pos_;
    const char* end = text_.data() + std::min(pos_ + 4, text_.size());
    const auto [stop, ec] = std::from_chars(begin, end, v, 16);
    if (ec != std::errc() || stop != begin + 4) error("expected 4 hex digits in a \\u escape");
    pos_ += 4;
    return v;
  }
  static void append_utf8(std::string& out, uint32_t cp) {
    static constexpr uint32_t kLead[] = {0x00, 0xC0, 0xE0, 0xF0};
    const int extra = cp < 0x80 ? 0 : cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
    out += char(kLead[extra] | (cp >> (6 * extra)));
    for (int k = extra - 1; k >= 0; --k) out += char(0x80 | ((cp >> (6 * k)) & 0x3F));
  }

  std::string parse_string() {
    if (!consume('"')) error("expected a string, got " + describe_next());
    static constexpr char kEscape[] = "\"\\/bfnrt", kMeaning[] = "\"\\/\b\f\n\r\t";
    std::string out;
    for (;;) {
      if (pos_ >= text_.size()) error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20)
        error_at(pos_ - 1, "control character inside a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      const size_t escape_at = pos_ - 1;
      if (pos_ >= text_.size()) error("unterminated string");
      const char e = text_[pos_++];
      if (e != 'u') {
        const char* known = e ? std::strchr(kEscape, e) : nullptr;
        if (!known) error_at(escape_at, "invalid escape in a string");
        out += kMeaning[known - kEscape];
        continue;
      }
      uint32_t cp = hex4();
      if (cp >= 0xDC00 && cp <= 0xDFFF)
        error_at(escape_at, "unpaired low surrogate in a \\u escape");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (!consume('\\') || !consume('u'))
          error_at(escape_at, "unpaired high surrogate in a \\u escape");
        const uint32_t low = hex4();
        if (low < 0xDC00 || low > 0xDFFF)
          error_at(escape_at, "invalid surrogate pair in a \\u escape");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      }
      append_utf8(out, cp);
    }
  }

  uint64_t parse_uint() {
    const size_t start = pos_;
    if (peek() < '0' || peek() > '9')
      error("expected a non-negative integer, got " + describe_next());
    uint64_t v = 0;
    for (; peek() >= '0' && peek() <= '9'; ++pos_) {
      const auto digit = uint64_t(text_[pos_] - '0');
      if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10)
        error_at(start, "integer too large");
      v = v * 10 + digit;
    }
    if (pos_ - start > 1 && text_[start] == '0') error_at(start, "integer with a leading zero");
    if (peek() == '.' || peek() == 'e' || peek() == 'E')
      error_at(start, "expected an integer, got a fraction");
    return v;
  }

  std::vector<uint64_t> parse_uint_array() {
    expect('[');
    std::vector<uint64_t> out;
    parse_items(']', "in an array", [&] { out.push_back(parse_uint()); });
    return out;
  }

  void parse_metadata(SafetensorsMetadata& metadata) {
    parse_object("in \"__metadata__\"", [&](std::string key, size_t key_at) {
      if (peek() != '"') error("metadata values must be strings, got " + describe_next());
      std::string value = parse_string();
      if (!metadata.emplace(key, std::move(value)).second)
        error_at(key_at, "duplicate metadata key " + json_quote(key));
    });
  }

  SafetensorsEntry parse_entry(std::string name) {
    SafetensorsEntry entry;
    entry.name = std::move(name);
    const std::string tensor = "tensor " + json_quote(entry.name);
    const size_t entry_at = pos_;
    std::set<std::string> seen;
    parse_object(("in the entry of " + tensor).c_str(), [&](std::string key, size_t key_at) {
      const size_t at = pos_;
      if (key == "dtype") {
        entry.dtype = parse_string();
        if (!find_dtype(entry.dtype))
          error_at(at, tensor + " has unknown or unsupported dtype " + json_quote(entry.dtype));
      } else if (key == "shape") {
        for (uint64_t d : parse_uint_array()) {
          if (d > uint64_t(std::numeric_limits<int64_t>::max()))
            error_at(at, tensor + " has a dimension too large");
          entry.shape.push_back(int64_t(d));
        }
      } else if (key == "data_offsets") {
        const auto offsets = parse_uint_array();
        if (offsets.size() != 2)
          error_at(at, cat(tensor, ": data_offsets must be [begin, end], got ", offsets.size(),
                           " numbers"));
        entry.begin = offsets[0];
        entry.end = offsets[1];
      } else {
        error_at(key_at, tensor + " has unknown field " + json_quote(key));
      }
      if (!seen.insert(key).second) error_at(key_at, tensor + " repeats field " + json_quote(key));
    });
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!seen.count(field)) error_at(entry_at, cat(tensor, " lacks \"", field, "\""));
    return entry;
  }

  const std::string& text_;
  size_t base_;
  const std::string& label_;
  size_t pos_ = 0;
};

}  // namespace

// ----------------------------------------------------------------------------- AtomicFile

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), temp_(path_ + ".tmp-" + std::to_string(::getpid())) {
  if (path_.empty()) fail("cannot write a file with an empty path");
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_) fail_with_errno("cannot create the temporary file " + temp_, errno);
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
  if (file_) {
    std::fclose(file_);
    file_ = nullptr;
  }
  std::remove(temp_.c_str());
}

void AtomicFile::fail_with_errno(const std::string& what, int error) {
  discard();
  fail("cannot write ", path_, ": ", what, ": ", errno_text(error ? error : EIO));
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (committed_ || !file_) fail("cannot write ", path_, ": the file is already closed");
  if (bytes == 0) return;
  if (const int injected = checkpoint_fault_errno("file-write"))
    fail_with_errno("writing " + temp_ + " failed", injected);
  errno = 0;
  if (std::fwrite(data, 1, bytes, file_) != bytes)
    fail_with_errno("writing " + temp_ + " failed", errno);
}

void AtomicFile::commit() {
  if (committed_ || !file_) fail("cannot write ", path_, ": the file is already closed");
  errno = 0;
  if (std::fflush(file_) != 0) fail_with_errno("flushing " + temp_ + " failed", errno);
  if (const int injected = checkpoint_fault_errno("file-sync"))
    fail_with_errno("syncing " + temp_ + " failed", injected);
  if (::fsync(::fileno(file_)) != 0) fail_with_errno("syncing " + temp_ + " failed", errno);
  std::FILE* f = file_;
  file_ = nullptr;  // fclose releases the stream even when it fails
  errno = 0;
  if (std::fclose(f) != 0) fail_with_errno("closing " + temp_ + " failed", errno);
  if (std::rename(temp_.c_str(), path_.c_str()) != 0)
    fail_with_errno("renaming " + temp_ + " over it failed", errno);
  committed_ = true;
  // Make the rename itself durable.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  try {
    sync_directory(dir.empty() ? "." : dir);
  } catch (const Error& e) {
    fail("wrote ", path_, " but ", e.what());
  }
}

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("cannot open directory ", dir, " to sync it: ", errno_text(errno));
  const int synced = ::fsync(fd);
  const int sync_error = errno;
  ::close(fd);
  // Some file systems cannot sync directories (EINVAL).
  if (synced != 0 && sync_error != EINVAL && sync_error != ENOTSUP)
    fail("syncing directory ", dir, " failed: ", errno_text(sync_error));
}

// ----------------------------------------------------------------------------- writer

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I32:
      return "I32";
    case DType::U8:
      return "U8";
  }
  return "?";
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const SafetensorsMetadata& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      header += json_quote(key);
      header += ':';
      header += json_quote(value);
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__")
      fail("cannot write ", path, ": invalid tensor name ", json_quote(name));
    if (!names.insert(name).second)
      fail("cannot write ", path, ": duplicate tensor name ", json_quote(name));
    if (!t.defined()) fail("cannot write ", path, ": tensor ", json_quote(name), " is undefined");
    if (header.size() > 1) header += ',';
    header +=
        cat(json_quote(name), ":{\"dtype\":\"", safetensors_dtype(t.dtype()), "\",\"shape\":[");
    for (int i = 0; i < t.shape().rank(); ++i) header += cat(i ? "," : "", t.shape()[i]);
    header += cat("],\"data_offsets\":[", offset, ",", offset + t.bytes(), "]}");
    offset += t.bytes();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // the buffer starts 8-byte aligned

  AtomicFile file(path);
  const uint64_t header_size = header.size();
  file.write(&header_size, sizeof header_size);  // little-endian (static_assert above)
  file.write(header.data(), header.size());
  std::vector<char> host;
  for (const auto& [name, t] : tensors) {
    if (t.device() == Device::CPU) {
      file.write(t.raw(), t.bytes());
    } else {
      host.resize(t.bytes());
      copy_bytes(host.data(), Device::CPU, t.raw(), t.device(), t.bytes());
      file.write(host.data(), host.size());
    }
  }
  file.commit();
}

// ----------------------------------------------------------------------------- reader

SafetensorsFile SafetensorsFile::read(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    fail(path, ": is a directory, not a safetensors file");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("cannot open ", path, ": ", errno_text(errno));
  std::string bytes;
  char chunk[1 << 16];
  for (;;) {
    const size_t n = std::fread(chunk, 1, sizeof chunk, f);
    bytes.append(chunk, n);
    if (n < sizeof chunk) break;
  }
  const bool failed = std::ferror(f) != 0;
  const int error = errno;
  std::fclose(f);
  if (failed) fail("cannot read ", path, ": ", errno_text(error ? error : EIO));
  return parse(std::move(bytes), path);
}

SafetensorsFile SafetensorsFile::parse(std::string bytes, const std::string& label) {
  SafetensorsFile file;
  file.path_ = label;
  if (bytes.size() < 8)
    fail(label, ": truncated: the file has ", bytes.size(),
         " bytes, fewer than the 8-byte header length");
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  if (header_size > kMaxHeaderBytes)
    fail(label, ": header length ", header_size, " (at byte 0) exceeds the limit of ",
         kMaxHeaderBytes, " bytes");
  if (header_size > bytes.size() - 8)
    fail(label, ": truncated or corrupt: the header length (at byte 0) is ", header_size,
         " bytes but only ", bytes.size() - 8, " bytes follow it");
  const std::string header = bytes.substr(8, size_t(header_size));
  HeaderParser(header, 8, label).parse(file.entries_, file.metadata_);

  file.buffer_start_ = 8 + size_t(header_size);
  const uint64_t buffer_size = bytes.size() - file.buffer_start_;
  for (const SafetensorsEntry& e : file.entries_) {
    const std::string name = json_quote(e.name);
    if (e.end < e.begin)
      fail(label, ": tensor ", name, " has data_offsets [", e.begin, ", ", e.end,
           "] that end before they begin");
    if (e.end > buffer_size)
      fail(label, ": tensor ", name, " has data_offsets [", e.begin, ", ", e.end, "] beyond the ",
           buffer_size, "-byte data buffer (file offset ", file.buffer_start_ + e.end,
           " > file size ", bytes.size(), ")");
    uint64_t elements = 1;
    for (int64_t d : e.shape) {
      if (d != 0 && elements > std::numeric_limits<uint64_t>::max() / uint64_t(d))
        fail(label, ": tensor ", name, " has shape ", shape_text(e.shape),
             " with too many elements");
      elements *= uint64_t(d);
    }
    const uint64_t size = find_dtype(e.dtype)->size;
    if (elements > std::numeric_limits<uint64_t>::max() / size ||
        elements * size != e.end - e.begin)
      fail(label, ": tensor ", name, " has data_offsets [", e.begin, ", ", e.end, "] (",
           e.end - e.begin, " bytes) but dtype ", e.dtype, " and shape ", shape_text(e.shape),
           " need ",
           elements <= std::numeric_limits<uint64_t>::max() / size ? std::to_string(elements * size)
                                                                   : std::string("more"),
           " bytes");
  }
  // The tensors must tile the buffer: sorted by offset, each begins where the previous ended.
  std::vector<const SafetensorsEntry*> sorted;
  for (const SafetensorsEntry& e : file.entries_) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const SafetensorsEntry* previous = nullptr;
  for (const SafetensorsEntry* e : sorted) {
    if (e->begin < covered)
      fail(label, ": tensors ", json_quote(previous->name), " [", previous->begin, ", ",
           previous->end, ") and ", json_quote(e->name), " [", e->begin, ", ", e->end,
           ") overlap in the data buffer");
    if (e->begin > covered)
      fail(label, ": bytes [", covered, ", ", e->begin, ") of the data buffer (file offset ",
           file.buffer_start_ + covered, ") belong to no tensor");
    covered = e->end;
    previous = e;
  }
  if (covered != buffer_size)
    fail(label, ": the data buffer has ", buffer_size, " bytes but the tensors cover only ",
         covered, " (unexpected bytes from file offset ", file.buffer_start_ + covered, ")");
  file.bytes_ = std::move(bytes);
  return file;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const SafetensorsEntry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

const std::string& SafetensorsFile::metadata_value(const std::string& key) const {
  const auto it = metadata_.find(key);
  if (it == metadata_.end()) fail(path_, ": metadata has no key ", json_quote(key));
  return it->second;
}

const char* SafetensorsFile::data(const SafetensorsEntry& entry) const {
  return bytes_.data() + buffer_start_ + entry.begin;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail(path_, ": no tensor named ", json_quote(name));
  DType dtype;
  if (e->dtype == "F32")
    dtype = DType::F32;
  else if (e->dtype == "F64")
    dtype = DType::F64;
  else if (e->dtype == "I32")
    dtype = DType::I32;
  else
    fail(path_, ": tensor ", json_quote(name), " has dtype ", e->dtype,
         ", which polytask cannot load (F32, F64 or I32)");
  if (e->shape.size() > size_t(Shape::kMaxRank))
    fail(path_, ": tensor ", json_quote(name), " has rank ", e->shape.size(),
         ", more than polytask's maximum ", Shape::kMaxRank);
  Shape shape;
  for (int64_t d : e->shape) shape.push_back(d);
  Tensor t = Tensor::empty(shape, dtype);
  if (t.bytes()) std::memcpy(t.raw(), data(*e), t.bytes());
  return t;
}

}  // namespace polytask
