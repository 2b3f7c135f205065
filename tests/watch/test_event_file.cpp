#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "tests/support/file_bytes.h"
#include "tests/support/python.h"
#include "watch/crc32c.h"
#include "watch/event_file.h"
#include "watch/protobuf_wire.h"
#include "watch/summary.h"

namespace polytask::watch {
namespace {

namespace fs = std::filesystem;
using testing::read_bytes;
using testing::write_bytes;

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// The message of the Error that `f` throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A clock that ticks one second per event, from 1000.5.
std::function<double()> ticking_clock() {
  auto t = std::make_shared<double>(1000.5);
  return [t] { return (*t)++; };
}

// The bytes of a PNG file: only carried, never decoded, by the writer and TensorBoard's reader.
constexpr char kPngBytes[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake";
const std::string kPng(kPngBytes, sizeof kPngBytes - 1);

class EventFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            cat("polytask_events_", ::getpid(), "_",
                ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string sub(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  // Every file under dir_, recursively.
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_))
      if (e.is_regular_file()) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  // Writes a file of scalars "loss" at `steps` (value step/10) under `subdir`; returns its path.
  std::string scalars_file(const std::string& subdir, const std::vector<int64_t>& steps) {
    EventWriter w(sub(subdir));
    for (int64_t s : steps) w.scalar("loss", s, double(s) / 10);
    w.flush();
    return w.path();
  }

  std::string dir_;
};

// ------------------------------------------------------------------------------- encoding

// Each expected Event was serialized by Python's protobuf (tensorboard 2.21's event_pb2,
// summary_pb2, tensor_pb2), e.g.
//   event_pb2.Event(wall_time=1.5, step=7, summary=summary_pb2.Summary(value=[
//       summary_pb2.Summary.Value(tag="loss", simple_value=0.25)])).SerializeToString().hex()
TEST(EventEncoding, MatchesPythonProtobuf) {
  EXPECT_EQ(summary_event(1.5, 7, {scalar_value("loss", 0.25f)}),
            from_hex("09000000000000f83f10072a0d0a0b0a046c6f7373150000803e"));
  // Value(tag="note", metadata=SummaryMetadata(plugin_data=PluginData(plugin_name="text")),
  //       tensor=TensorProto(dtype=7, tensor_shape=TensorShapeProto(), string_val=[b"*hi*"]))
  EXPECT_EQ(summary_event(2.0, -3, {text_value("note", "*hi*")}),
            from_hex("09000000000000004010fdffffffffffffffff012a1e0a1c0a046e6f7465420a08071200420"
                     "42a68692a4a080a060a0474657874"));
  // Value(tag="img", image=Image(height=2, width=3, colorspace=4, encoded_image_string=b"PNG"))
  EXPECT_EQ(summary_event(3.0, 300, {image_value("img", "PNG", 2, 3, 4)}),
            from_hex("09000000000000084010ac022a140a120a03696d67220b0802100318042203504e47"));
  // HistogramProto(min=-1.5, max=2.0, num=3, sum=1.25, sum_squares=6.5,
  //                bucket_limit=[-1.0, 1e-12, DBL_MAX], bucket=[1, 1, 1])
  Histogram h;
  h.min = -1.5;
  h.max = 2.0;
  h.num = 3;
  h.sum = 1.25;
  h.sum_squares = 6.5;
  h.bucket_limit = {-1.0, 1e-12, DBL_MAX};
  h.bucket = {1, 1, 1};
  EXPECT_EQ(summary_event(4.0, 1, {histogram_value("w", h)}),
            from_hex("09000000000000104010012a680a660a01772a6109000000000000f8bf1100000000000000"
                     "4019000000000000084021000000000000f43f290000000000001a403218000000000000f0"
                     "bf11ea2d819997713dffffffffffffef7f3a18000000000000f03f000000000000f03f0000"
                     "00000000f03f"));
  EXPECT_EQ(file_version_event(5.0, "brain.Event:2"),
            from_hex("0900000000000014401a0d627261696e2e4576656e743a32"));
}

TEST(EventEncoding, RejectsBadArguments) {
  EXPECT_TRUE(contains(error_of([] { image_value("img", kPng, 2, 2, 2); }), "2 channels"));
  EXPECT_TRUE(contains(error_of([] { image_value("img", kPng, 0, 2, 3); }), "not positive"));
  EXPECT_TRUE(contains(error_of([] { scalar_value("", 1); }), "non-empty tag"));
  EXPECT_TRUE(contains(error_of([] { text_value("", "x"); }), "non-empty tag"));
}

TEST(ProtobufWire, DecoderRejectsMalformedInput) {
  for (const std::string& bad :
       {std::string("\x08\x80", 2), std::string("\x0a\x05xy", 4), std::string("\x0b", 1),
        std::string("\x00\x01", 2), std::string("\x09\x01\x02", 3)}) {
    wire::Decoder d(bad);
    wire::Field f;
    EXPECT_TRUE(contains(error_of([&] {
                           while (d.next(f)) {
                           }
                         }),
                         "malformed protobuf"))
        << ::testing::PrintToString(bad);
  }
}

TEST(ProtobufWire, VarintsRoundTrip) {
  const std::vector<uint64_t> values = {0, 1, 127, 128, 300, uint64_t(1) << 35, ~uint64_t(0)};
  wire::Encoder e;
  for (size_t i = 0; i < values.size(); ++i) e.varint(int(i) + 1, values[i]);
  e.int64(100, -1).double_(101, -0.125).float_(102, 3.5f).bytes(103, "abc");
  wire::Decoder d(e.str());
  wire::Field f;
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_TRUE(d.next(f));
    EXPECT_EQ(f.number, int(i) + 1);
    EXPECT_EQ(f.bits, values[i]);
  }
  ASSERT_TRUE(d.next(f));
  EXPECT_EQ(f.as_int64(), -1);
  ASSERT_TRUE(d.next(f));
  EXPECT_EQ(f.as_double(), -0.125);
  ASSERT_TRUE(d.next(f));
  EXPECT_EQ(f.as_float(), 3.5f);
  ASSERT_TRUE(d.next(f));
  EXPECT_EQ(f.number, 103);
  EXPECT_EQ(f.bytes, "abc");
  EXPECT_FALSE(d.next(f));
}

// ------------------------------------------------------------------------------- histograms

TEST(Histograms, NumbersAndBuckets) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> values = {-2, -1, 0, 0, 0.5f, 3, nan, inf, -inf, 1e30f};
  const Histogram h = make_histogram(values.data(), values.size());
  EXPECT_EQ(h.num, 7);  // NaN and ±inf skipped
  EXPECT_EQ(h.min, -2);
  EXPECT_EQ(h.max, double(1e30f));
  EXPECT_EQ(h.sum, -2 - 1 + 0.5 + 3 + double(1e30f));
  EXPECT_EQ(h.sum_squares, 4 + 1 + 0.25 + 9 + double(1e30f) * double(1e30f));
  ASSERT_EQ(h.bucket.size(), h.bucket_limit.size());
  double total = 0;
  for (size_t i = 0; i < h.bucket.size(); ++i) {
    total += h.bucket[i];
    if (i > 0) {
      EXPECT_LT(h.bucket_limit[i - 1], h.bucket_limit[i]);
      EXPECT_FALSE(h.bucket[i - 1] == 0 && h.bucket[i] == 0) << "runs of empty buckets collapse";
    }
    // Each finite value lies in exactly the bucket whose [previous limit, limit) holds it.
    const double lower = i == 0 ? -DBL_MAX : h.bucket_limit[i - 1];
    double inside = 0;
    for (float v : values)
      if (std::isfinite(v) && v >= lower && v < h.bucket_limit[i]) inside += 1;
    EXPECT_EQ(h.bucket[i], inside) << "bucket " << i << " up to " << h.bucket_limit[i];
  }
  EXPECT_EQ(total, h.num);
  EXPECT_EQ(h.bucket_limit.back(), DBL_MAX);  // 1e30 is beyond the last finite limit, 1e20
  EXPECT_EQ(h.bucket.back(), 1);
}

TEST(Histograms, TensorFlowLimits) {
  // The bucket holding 1 ends at the first 1e-12·1.1^k above 1 (k = 290), the one holding 0
  // at 1e-12, and the one holding -1 at the last -1e-12·1.1^k above -1 (k = 289).
  const float values[] = {1.0f};
  const Histogram one = make_histogram(values, 1);
  ASSERT_EQ(one.bucket.size(), 3u);
  double limit = 1e-12;
  for (int k = 0; k < 290; ++k) limit *= 1.1;
  EXPECT_EQ(one.bucket_limit[1], limit);
  EXPECT_GT(one.bucket_limit[1], 1.0);
  EXPECT_LT(one.bucket_limit[0], 1.0);
  const float zero[] = {0.0f};
  EXPECT_EQ(make_histogram(zero, 1).bucket_limit[1], 1e-12);
}

TEST(Histograms, NoFiniteValues) {
  const float nan[] = {std::numeric_limits<float>::quiet_NaN()};
  for (size_t n : {size_t(0), size_t(1)}) {
    const Histogram h = make_histogram(nan, n);
    EXPECT_EQ(h.num, 0);
    EXPECT_EQ(h.min, 0);
    EXPECT_EQ(h.max, 0);
    EXPECT_EQ(h.bucket, std::vector<double>{0.0});
    EXPECT_EQ(h.bucket_limit, std::vector<double>{DBL_MAX});
  }
}

// ------------------------------------------------------------------------------- writer, reader

TEST_F(EventFile, RoundTrip) {
  EventWriter w(sub("a/b"));
  EXPECT_TRUE(fs::is_directory(sub("a/b")));
  w.set_clock(ticking_clock());
  const std::vector<float> weights = {-1, 0.5f, 2, 2, 7};
  w.scalar("loss", 1, 0.5);
  w.scalar("acc", 1, 0.25);
  w.histogram("weights", 2, weights.data(), weights.size());
  w.image("sample", 3, kPng, 4, 5, 3);
  w.text("notes", 4, "**bold** and `code`");
  w.scalar("loss", 10, 0.125);
  w.flush();

  bool truncated = true;
  const std::vector<EventRecord> r = read_events(w.path(), &truncated);
  EXPECT_FALSE(truncated);
  ASSERT_EQ(r.size(), 7u);
  EXPECT_EQ(r[0].file_version, "brain.Event:2");
  EXPECT_TRUE(r[0].tags.empty());
  EXPECT_EQ(r[0].offset, 0u);
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"loss", 1}, {"acc", 1}, {"weights", 2}, {"sample", 3}, {"notes", 4}, {"loss", 10}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r[i + 1].tags, std::vector<std::string>{expected[i].first}) << i;
    EXPECT_EQ(r[i + 1].step, expected[i].second) << i;
    EXPECT_EQ(r[i + 1].wall_time, 1000.5 + double(i)) << i;
    EXPECT_TRUE(r[i + 1].file_version.empty());
    EXPECT_GT(r[i + 1].offset, r[i].offset);
  }
  EXPECT_EQ(r[1].data, summary_event(1000.5, 1, {scalar_value("loss", 0.5f)}));
  EXPECT_EQ(
      r[3].data,
      summary_event(1002.5, 2, {histogram_value("weights", make_histogram(weights.data(), 5))}));
  EXPECT_EQ(r[5].data, summary_event(1004.5, 4, {text_value("notes", "**bold** and `code`")}));
  // The records tile the file.
  const size_t size = fs::file_size(w.path());
  EXPECT_EQ(r.back().offset + 12 + r.back().data.size() + 4, size);
}

TEST_F(EventFile, FileNamesAndTwoWritersInOneProcess) {
  EventWriter a(dir_), b(dir_);
  EXPECT_NE(a.path(), b.path());
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::regex name(
      cat(R"(events\.out\.tfevents\.\d{10}\.)",
          std::regex_replace(host, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)"), R"(\.)",
          ::getpid(), R"(\.\d+)"));
  for (const std::string& p : {a.path(), b.path()}) {
    EXPECT_EQ(fs::path(p).parent_path(), fs::path(dir_));
    EXPECT_TRUE(std::regex_match(fs::path(p).filename().string(), name)) << p;
  }
  a.scalar("x", 1, 1);
  b.scalar("y", 2, 2);
  a.flush();
  b.flush();
  EXPECT_EQ(read_events(a.path()).back().tags, std::vector<std::string>{"x"});
  EXPECT_EQ(read_events(b.path()).back().tags, std::vector<std::string>{"y"});
}

TEST_F(EventFile, FlushMakesEventsVisible) {
  EventWriter w(dir_);
  w.scalar("loss", 1, 1);
  w.flush();
  EXPECT_EQ(read_events(w.path()).size(), 2u);
  w.scalar("loss", 2, 1);
  w.flush();
  EXPECT_EQ(read_events(w.path()).size(), 3u);
}

TEST_F(EventFile, CannotCreateTheDirectory) {
  fs::create_directories(dir_);
  write_bytes(sub("file"), "x");
  const std::string message = error_of([&] { EventWriter w(sub("file/events")); });
  EXPECT_TRUE(contains(message, sub("file/events"))) << message;
}

TEST_F(EventFile, TruncatedTailEndsTheListQuietly) {
  const std::string path = scalars_file("run", {1, 2, 3});
  const std::string bytes = read_bytes(path);
  const std::vector<EventRecord> all = read_events(path);
  ASSERT_EQ(all.size(), 4u);
  const size_t last = all.back().offset;
  for (size_t cut = last; cut < bytes.size(); ++cut) {
    write_bytes(sub("cut"), bytes.substr(0, cut));
    bool truncated = false;
    const std::vector<EventRecord> r = read_events(sub("cut"), &truncated);
    EXPECT_EQ(r.size(), 3u) << cut;
    EXPECT_EQ(r.back().step, 2) << cut;
    EXPECT_EQ(truncated, cut != last) << cut;  // cut at a record boundary: nothing is cut off
  }
  write_bytes(sub("cut"), "");
  bool truncated = true;
  EXPECT_TRUE(read_events(sub("cut"), &truncated).empty());
  EXPECT_FALSE(truncated);
}

TEST_F(EventFile, CorruptMiddleRecordThrowsWithFileAndOffset) {
  const std::string path = scalars_file("run", {1, 2, 3});
  const std::string bytes = read_bytes(path);
  const std::vector<EventRecord> all = read_events(path);
  const size_t begin = all[2].offset, end = all[3].offset;
  for (size_t at = begin; at < end; ++at) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x10);
    write_bytes(sub("bad"), bad);
    const std::string message = error_of([&] { read_events(sub("bad")); });
    EXPECT_TRUE(contains(message, sub("bad"))) << at << ": " << message;
    EXPECT_TRUE(contains(message, cat("record at byte ", begin, " "))) << at << ": " << message;
    EXPECT_TRUE(contains(message, "CRC")) << at << ": " << message;
  }
}

TEST_F(EventFile, MalformedEventThrowsWithFileAndOffset) {
  const std::string path = scalars_file("run", {1});
  std::string bytes = read_bytes(path);
  const size_t at = bytes.size();
  const std::string garbage("\x0a\x7f", 2);  // a length past the end of the Event
  wire::put_le64(bytes, garbage.size());
  wire::put_le32(bytes, masked_crc32c(bytes.data() + at, 8));
  bytes += garbage;
  wire::put_le32(bytes, masked_crc32c(garbage.data(), garbage.size()));
  write_bytes(path, bytes);
  const std::string message = error_of([&] { read_events(path); });
  EXPECT_TRUE(contains(message, path)) << message;
  EXPECT_TRUE(contains(message, cat("record at byte ", at, ":"))) << message;
  EXPECT_TRUE(contains(message, "malformed protobuf")) << message;
}

TEST_F(EventFile, MissingFileThrows) {
  EXPECT_TRUE(contains(error_of([&] { read_events(sub("none")); }), sub("none")));
}

// ------------------------------------------------------------------------------- pruning

ino_t inode(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return st.st_ino;
}

TEST_F(EventFile, PruneKeepsWhatIsAskedAtomically) {
  const std::string a = scalars_file("run", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  const std::string b = scalars_file("run/eval", {0, 2, 4});  // all kept: not rewritten
  const std::string c = scalars_file("run/old", {1, 2});      // gains a truncated tail
  write_bytes(c, read_bytes(c) + std::string("\x05\0\0", 3));
  write_bytes(sub("run/notes.txt"), "not an events file");
  const ino_t b_inode = inode(b);
  const std::string b_bytes = read_bytes(b);

  std::vector<int64_t> asked;
  const size_t dropped = prune_events(sub("run"), [&](const EventRecord& r) {
    asked.push_back(r.step);
    return r.step < 5;
  });
  EXPECT_EQ(dropped, 5u);
  EXPECT_EQ(asked.size(), 10u + 3 + 2);  // never for the file_version records

  const auto steps = [](const std::string& path, bool* truncated) {
    std::vector<int64_t> out;
    for (const EventRecord& r : read_events(path, truncated))
      if (r.file_version.empty()) out.push_back(r.step);
    return out;
  };
  bool truncated = true;
  EXPECT_EQ(steps(a, &truncated), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_FALSE(truncated);
  EXPECT_EQ(read_events(a).front().file_version, "brain.Event:2");
  EXPECT_EQ(steps(c, &truncated), (std::vector<int64_t>{1, 2}));
  EXPECT_FALSE(truncated);
  EXPECT_EQ(inode(b), b_inode);
  EXPECT_EQ(read_bytes(b), b_bytes);
  // Nothing left behind: the three events files and the text file.
  EXPECT_EQ(files(), (std::vector<std::string>{b, a, sub("run/notes.txt"), c}));  // sorted

  // Pruning again changes nothing.
  const ino_t a_inode = inode(a);
  EXPECT_EQ(prune_events(sub("run"), [](const EventRecord& r) { return r.step < 5; }), 0u);
  EXPECT_EQ(inode(a), a_inode);
}

TEST_F(EventFile, PruneDropsEverythingButTheFileVersion) {
  const std::string a = scalars_file("run", {3, 4});
  EXPECT_EQ(prune_events(sub("run"), [](const EventRecord&) { return false; }), 2u);
  const std::vector<EventRecord> r = read_events(a);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].file_version, "brain.Event:2");
}

TEST_F(EventFile, PruneOfAMissingDirectoryDropsNothing) {
  EXPECT_EQ(prune_events(sub("none"), [](const EventRecord&) { return false; }), 0u);
}

TEST_F(EventFile, PruneOfACorruptFileThrowsAndLeavesIt) {
  const std::string a = scalars_file("run", {1, 2, 3});
  std::string bytes = read_bytes(a);
  bytes[read_events(a)[2].offset + 14] ^= 1;
  write_bytes(a, bytes);
  const std::string message =
      error_of([&] { prune_events(sub("run"), [](const EventRecord&) { return false; }); });
  EXPECT_TRUE(contains(message, a)) << message;
  EXPECT_EQ(read_bytes(a), bytes);
  EXPECT_EQ(files(), std::vector<std::string>{a});
}

// ------------------------------------------------------------------------------- TensorBoard

const std::string& python_with_tensorboard() {
  static const std::string found = testing::python_that_imports("tensorboard");
  return found;
}

std::string interop_script() {
  return std::string(POLYTASK_SOURCE_DIR) + "/tests/watch/tensorboard_interop.py";
}

// What TensorBoard's EventAccumulator reads from `dir` (tensorboard_interop.py's JSON).
nlohmann::json tensorboard_reads(const std::string& dir) {
  const auto [status, out] =
      testing::run_command(cat(python_with_tensorboard(), " '", interop_script(), "' '", dir, "'"));
  EXPECT_EQ(status, 0) << out;
  // Only the last line: TensorBoard may log warnings before it.
  const size_t end = out.find_last_not_of('\n');
  const size_t begin = out.rfind('\n', end);
  const std::string last = out.substr(begin == std::string::npos ? 0 : begin + 1);
  try {
    return nlohmann::json::parse(last);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << e.what() << "\n" << out;
    return nlohmann::json::object();
  }
}

#define SKIP_WITHOUT_TENSORBOARD()                                                    \
  if (python_with_tensorboard().empty())                                              \
  GTEST_SKIP() << "neither python3 nor /usr/bin/python3 can import tensorboard (pip " \
                  "install tensorboard)"

TEST_F(EventFile, TensorBoardReadsWhatWeWrite) {
  SKIP_WITHOUT_TENSORBOARD();
  ASSERT_TRUE(fs::exists(interop_script())) << interop_script();
  EventWriter w(dir_);
  w.set_clock(ticking_clock());
  const std::vector<double> losses = {2.5, 1.0 / 3.0, 0.1, 1e-7};
  for (size_t i = 0; i < losses.size(); ++i) w.scalar("train/loss", int64_t(i) * 100, losses[i]);
  std::vector<float> weights(1000);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = std::sin(float(i)) * float(i % 7);
  weights[17] = std::numeric_limits<float>::quiet_NaN();
  w.histogram("weights/conv1", 100, weights.data(), weights.size());
  w.image("samples", 200, kPng, 48, 64, 3);
  w.image("samples", 300, kPng, 10, 20, 4);
  w.text("config", 0, "# run\n**lr** = 0.1");
  w.flush();

  const nlohmann::json tb = tensorboard_reads(dir_);
  ASSERT_TRUE(tb.contains("scalars")) << tb.dump();
  const auto& loss = tb["scalars"]["train/loss"];
  ASSERT_EQ(loss.size(), losses.size()) << tb.dump();
  for (size_t i = 0; i < losses.size(); ++i) {
    EXPECT_EQ(loss[i][0].get<int64_t>(), int64_t(i) * 100);
    EXPECT_EQ(loss[i][1].get<double>(), 1000.5 + double(i));  // wall_time
    EXPECT_EQ(loss[i][2].get<double>(), double(float(losses[i])));
  }

  const Histogram h = make_histogram(weights.data(), weights.size());
  const auto& histo = tb["histograms"]["weights/conv1"];
  ASSERT_EQ(histo.size(), 1u) << tb.dump();
  EXPECT_EQ(histo[0][0].get<int64_t>(), 100);
  EXPECT_EQ(histo[0][1].get<double>(), h.min);
  EXPECT_EQ(histo[0][2].get<double>(), h.max);
  EXPECT_EQ(histo[0][3].get<double>(), 999.0);  // the NaN is not counted
  EXPECT_EQ(histo[0][4].get<double>(), h.sum);
  EXPECT_EQ(histo[0][5].get<double>(), h.sum_squares);
  EXPECT_EQ(histo[0][6].get<double>(), 999.0);
  EXPECT_EQ(histo[0][7].get<size_t>(), h.bucket.size());

  const auto& images = tb["images"]["samples"];
  ASSERT_EQ(images.size(), 2u) << tb.dump();
  EXPECT_EQ(images[0], nlohmann::json::array({200, 64, 48, kPng.size()}));
  EXPECT_EQ(images[1], nlohmann::json::array({300, 20, 10, kPng.size()}));

  const auto& text = tb["texts"]["config"];
  ASSERT_EQ(text.size(), 1u) << tb.dump();
  EXPECT_EQ(text[0][0].get<int64_t>(), 0);
  EXPECT_EQ(text[0][1].get<std::string>(), "text");
  EXPECT_EQ(text[0][2].get<std::string>(), "# run\n**lr** = 0.1");
  // The text plugin renders the markdown.
  EXPECT_TRUE(contains(text[0][3].get<std::string>(), "<strong>lr</strong>")) << text[0][3];
}

// TensorBoard's reader does check the CRCs (so the test above passing means ours are right): it
// stops at a record whose CRC is wrong, and sees nothing from there on.
TEST_F(EventFile, TensorBoardStopsAtABadCrc) {
  SKIP_WITHOUT_TENSORBOARD();
  const std::string path = scalars_file("", {1, 2, 3, 4});
  std::string bytes = read_bytes(path);
  const std::vector<EventRecord> r = read_events(path);
  const size_t crc_at = r[3].offset + 12 + r[3].data.size();  // the data CRC of step 3
  bytes[crc_at] = static_cast<char>(bytes[crc_at] ^ 1);
  write_bytes(path, bytes);
  EXPECT_TRUE(contains(error_of([&] { read_events(path); }), "CRC"));

  const nlohmann::json tb = tensorboard_reads(dir_);
  ASSERT_TRUE(tb.contains("scalars")) << tb.dump();
  const auto& loss = tb["scalars"]["loss"];
  ASSERT_EQ(loss.size(), 2u) << tb.dump();
  EXPECT_EQ(loss[0][0].get<int64_t>(), 1);
  EXPECT_EQ(loss[1][0].get<int64_t>(), 2);
}

}  // namespace
}  // namespace polytask::watch
