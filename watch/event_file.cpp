#include "watch/event_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "engine/safetensors.h"  // sync_directory
#include "kernels/error.h"
#include "watch/crc32c.h"
#include "watch/protobuf_wire.h"
#include "watch/summary.h"

namespace polytask::watch {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFileVersion = "brain.Event:2";
constexpr size_t kHeaderBytes = 12;  // length and its CRC
constexpr size_t kFooterBytes = 4;   // the data's CRC

std::string errno_text(int error) { return std::generic_category().message(error); }

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

std::string framed(const std::string& data) {
  std::string out;
  out.reserve(kHeaderBytes + data.size() + kFooterBytes);
  wire::put_le64(out, data.size());
  wire::put_le32(out, masked_crc32c(out.data(), 8));
  out += data;
  wire::put_le32(out, masked_crc32c(data.data(), data.size()));
  return out;
}

void decode_summary(std::string_view summary, EventRecord& record) {
  wire::Decoder values(summary);
  for (wire::Field f; values.next(f);) {
    if (f.number != 1 || f.type != wire::WireType::kLengthDelimited) continue;
    wire::Decoder value(f.bytes);
    for (wire::Field g; value.next(g);)
      if (g.number == 1 && g.type == wire::WireType::kLengthDelimited)
        record.tags.emplace_back(g.bytes);
  }
}

void decode_event(EventRecord& record) {
  wire::Decoder event(record.data);
  for (wire::Field f; event.next(f);) {
    if (f.number == 1 && f.type == wire::WireType::kFixed64) record.wall_time = f.as_double();
    if (f.number == 2 && f.type == wire::WireType::kVarint) record.step = f.as_int64();
    if (f.number == 3 && f.type == wire::WireType::kLengthDelimited) record.file_version = f.bytes;
    if (f.number == 5 && f.type == wire::WireType::kLengthDelimited)
      decode_summary(f.bytes, record);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open events file ", path, ": ", errno_text(errno));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) fail("cannot read events file ", path);
  return std::move(content).str();
}

// Writes `content` over `path` atomically. Not AtomicFile: its temporary is named after the
// target, and a name containing "tfevents" would be read by a TensorBoard watching the directory.
void replace_file(const std::string& path, const std::string& content) {
  static std::atomic<unsigned> counter{0};
  const fs::path target(path);
  const std::string temp = (target.parent_path() /
                            cat(".polytask-prune.", ::getpid(), ".", counter.fetch_add(1), ".tmp"))
                               .string();
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot rewrite ", path, ": creating ", temp, ": ", errno_text(errno));
  auto give_up = [&](const std::string& what, int error) {
    ::close(fd);
    ::unlink(temp.c_str());
    fail("cannot rewrite ", path, ": ", what, " ", temp, " failed: ", errno_text(error));
  };
  for (size_t done = 0; done < content.size();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) give_up("writing", n < 0 ? errno : EIO);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) give_up("syncing", errno);
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    fail("cannot rewrite ", path, ": closing ", temp, " failed: ", errno_text(error));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    fail("cannot rewrite ", path, ": renaming ", temp, " over it failed: ", errno_text(error));
  }
  const std::string dir = target.parent_path().string();
  sync_directory(dir.empty() ? "." : dir);
}

}  // namespace

// ----------------------------------------------------------------------------- EventWriter

EventWriter::EventWriter(const std::string& dir) : clock_(now_seconds) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create the events directory ", dir, ": ", ec.message());
  static std::atomic<unsigned> counter{0};
  const auto seconds = static_cast<long long>(clock_());
  const std::string host = host_name();
  // "x": never append to or truncate another writer's file (a pid reused within the second).
  for (int attempt = 0; !file_; ++attempt) {
    path_ = (fs::path(dir) / cat("events.out.tfevents.", seconds, ".", host, ".", ::getpid(), ".",
                                 counter.fetch_add(1)))
                .string();
    file_ = std::fopen(path_.c_str(), "wbx");
    if (!file_ && (errno != EEXIST || attempt == 100))
      fail("cannot create events file ", path_, ": ", errno_text(errno));
  }
  write_event(file_version_event(clock_(), kFileVersion));
}

EventWriter::~EventWriter() {
  if (file_) std::fclose(file_);
}

void EventWriter::fail_with_errno(const std::string& what, int error) {
  fail("cannot write events file ", path_, ": ", what, ": ", errno_text(error ? error : EIO));
}

void EventWriter::write_event(const std::string& event) {
  const std::string record = framed(event);
  errno = 0;
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size())
    fail_with_errno("writing failed", errno);
}

void EventWriter::scalar(const std::string& tag, int64_t step, double value) {
  write_event(summary_event(clock_(), step, {scalar_value(tag, static_cast<float>(value))}));
}

void EventWriter::histogram(const std::string& tag, int64_t step, const float* values, size_t n) {
  write_event(summary_event(clock_(), step, {histogram_value(tag, make_histogram(values, n))}));
}

void EventWriter::image(const std::string& tag, int64_t step, const std::string& png, int height,
                        int width, int channels) {
  write_event(summary_event(clock_(), step, {image_value(tag, png, height, width, channels)}));
}

void EventWriter::text(const std::string& tag, int64_t step, const std::string& markdown) {
  write_event(summary_event(clock_(), step, {text_value(tag, markdown)}));
}

void EventWriter::flush() {
  errno = 0;
  if (std::fflush(file_) != 0) fail_with_errno("flushing failed", errno);
  if (::fsync(::fileno(file_)) != 0) fail_with_errno("syncing failed", errno);
}

// ----------------------------------------------------------------------------- reading

std::vector<EventRecord> read_events(const std::string& path, bool* truncated) {
  const std::string bytes = read_file(path);
  std::vector<EventRecord> records;
  bool cut = false;
  for (size_t pos = 0; pos < bytes.size();) {
    const size_t left = bytes.size() - pos;
    if (left < kHeaderBytes) {
      cut = true;
      break;
    }
    const char* header = bytes.data() + pos;
    if (wire::get_le32(header + 8) != masked_crc32c(header, 8))
      fail("events file ", path, ": the length of the record at byte ", pos,
           " fails its CRC check");
    const uint64_t length = wire::get_le64(header);
    if (length > left - kHeaderBytes || left - kHeaderBytes - length < kFooterBytes) {
      cut = true;
      break;
    }
    EventRecord record;
    record.offset = pos;
    record.data = bytes.substr(pos + kHeaderBytes, length);
    const uint32_t stored = wire::get_le32(bytes.data() + pos + kHeaderBytes + length);
    if (stored != masked_crc32c(record.data.data(), record.data.size()))
      fail("events file ", path, ": the data of the record at byte ", pos, " (", length,
           " bytes) fails its CRC check");
    try {
      decode_event(record);
    } catch (const Error& e) {
      fail("events file ", path, ": the Event of the record at byte ", pos, ": ", e.what());
    }
    records.push_back(std::move(record));
    pos += kHeaderBytes + length + kFooterBytes;
  }
  if (truncated) *truncated = cut;
  return records;
}

// ----------------------------------------------------------------------------- pruning

size_t prune_events(const std::string& dir, const std::function<bool(const EventRecord&)>& keep) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return 0;
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec))
    if (it->is_regular_file() &&
        it->path().filename().string().find("tfevents") != std::string::npos)
      files.push_back(it->path().string());
  if (ec) fail("cannot list the events directory ", dir, ": ", ec.message());
  std::sort(files.begin(), files.end());

  size_t dropped = 0;
  for (const std::string& file : files) {
    bool truncated = false;
    const std::vector<EventRecord> records = read_events(file, &truncated);
    std::string kept;
    size_t dropped_here = 0;
    for (const EventRecord& r : records) {
      if (!r.file_version.empty() || keep(r))
        kept += framed(r.data);
      else
        ++dropped_here;
    }
    if (dropped_here == 0 && !truncated) continue;
    replace_file(file, kept);
    dropped += dropped_here;
  }
  return dropped;
}

}  // namespace polytask::watch
