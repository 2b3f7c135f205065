// TensorBoard events files: writing them, reading them back, and pruning them when a run resumes
// from an earlier checkpoint (so the curves show the resumed run once, not the abandoned steps
// as well).
//
// A file is a sequence of TFRecords, each
//   [u64 length] [u32 masked CRC-32C of those 8 bytes] [length bytes: an Event] [u32 masked CRC]
// (little endian); the first Event holds file_version "brain.Event:2". TensorBoard reads every
// file under the log directory whose name contains "tfevents".
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace polytask::watch {

class EventWriter {
 public:
  // Creates `dir` if needed and a new file in it,
  // events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n> (n counts the writers of this
  // process, so two never share a file), beginning with the file_version event.
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  void scalar(const std::string& tag, int64_t step, double value);  // stored as a float
  // A histogram of the finite values among `n` (watch/summary.h: make_histogram).
  void histogram(const std::string& tag, int64_t step, const float* values, size_t n);
  // `png`: a PNG file's bytes; channels 1, 3 or 4.
  void image(const std::string& tag, int64_t step, const std::string& png, int height, int width,
             int channels);
  void text(const std::string& tag, int64_t step, const std::string& markdown);

  // Everything written so far reaches the disk (fflush + fsync): TensorBoard sees it, and a
  // crash after this loses nothing before it.
  void flush();

  const std::string& path() const { return path_; }

  // Events carry the current time; tests fix it here (seconds since the epoch).
  void set_clock(std::function<double()> clock) { clock_ = std::move(clock); }

 private:
  void write_event(const std::string& event);
  [[noreturn]] void fail_with_errno(const std::string& what, int error);

  std::string path_;
  std::FILE* file_ = nullptr;
  std::function<double()> clock_;
};

// One record of an events file, decoded as far as the resume logic needs.
struct EventRecord {
  double wall_time = 0;
  int64_t step = 0;
  std::vector<std::string> tags;  // the Summary's value tags (empty for the file_version event)
  std::string file_version;       // set for the first record
  std::string data;               // the record's Event bytes, unchanged
  uint64_t offset = 0;            // where the record starts in the file
};

// Reads every complete record of `path`. A truncated tail (a writer killed mid-record) ends the
// list quietly (*truncated set when non-null); a CRC mismatch, malformed framing or an Event
// that is not valid protobuf throws polytask::Error naming the file and byte offset.
std::vector<EventRecord> read_events(const std::string& path, bool* truncated = nullptr);

// For a resumed run: every events file under `dir` (recursively; none when `dir` does not
// exist) is rewritten keeping the records for which keep(record) is true (a file_version record
// is always kept) and dropping a truncated tail. Each rewrite is atomic: a temporary in the same
// directory, whose name has no "tfevents" so TensorBoard never reads it, is fsynced and renamed
// over the file. Files left unchanged are not rewritten. Returns the number of records dropped.
size_t prune_events(const std::string& dir, const std::function<bool(const EventRecord&)>& keep);

}  // namespace polytask::watch
