// safetensors reading and writing: round trips of every polytask dtype and odd shapes, each
// kind of header or offset corruption rejected with a one-line error naming the file, atomic
// writes that leave the previous file intact when writing fails, and interoperability with the
// reference Python implementation (skipped when `import safetensors, numpy` fails).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/safetensors.h"
#include "tests/engine/engine_fixtures.h"
#include "tests/support/file_bytes.h"
#include "tests/support/python.h"

namespace polytask {
namespace {

namespace fs = std::filesystem;
using testing::read_bytes;
using testing::write_bytes;
using testing::contains;
using testing::error_message;
using testing::run_command;

// A file with the given header text (no padding added) and buffer.
std::string raw_file(const std::string& header, const std::string& buffer, uint64_t length) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &length, 8);
  return out + header + buffer;
}
std::string raw_file(const std::string& header, const std::string& buffer) {
  return raw_file(header, buffer, header.size());
}

std::vector<std::string> leftovers(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos)
      out.push_back(e.path().string());
  return out;
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            cat("polytask_safetensors_", ::getpid(), "_",
                ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  std::string dir_;
};

template <class T>
Tensor sequence(const Shape& shape, double scale, double shift) {
  std::vector<T> v(size_t(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = T(double(i) * scale + shift);
  return Tensor::from_vector(shape, v);
}

void expect_same_tensor(const Tensor& expected, const Tensor& got, const std::string& name) {
  ASSERT_TRUE(got.defined()) << name;
  EXPECT_EQ(got.dtype(), expected.dtype()) << name;
  EXPECT_EQ(got.shape(), expected.shape()) << name;
  ASSERT_EQ(got.bytes(), expected.bytes()) << name;
  const Tensor host = expected.to(Device::CPU);
  EXPECT_EQ(0, std::memcmp(got.raw(), host.raw(), got.bytes())) << name << " differs";
}

TEST_F(Safetensors, RoundTripsEveryDtypeAndOddShapes) {
  const Tensor big = sequence<float>({5, 3}, 0.25, -1.0);
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"conv.weight", sequence<float>({4, 1, 3, 3}, 0.1, -2.0)},
      {"f64", sequence<double>({2, 1, 3}, 1.0 / 3.0, 1e-300)},
      {"labels", sequence<int32_t>({7}, -3.0, 2147483000.0)},
      {"scalar", sequence<float>({}, 0, 42.5)},
      {"empty", Tensor::zeros({0, 3}, DType::F64)},
      {"rank6", sequence<double>({1, 2, 1, 3, 1, 2}, -0.5, 0.0)},
      {"odd_i32", sequence<int32_t>({3}, 1.0, 0.0)},  // 12 bytes: the next tensor is unaligned
      {"slice_of_a_view", big.slice(2, 4)},
      {"needs \"escaping\"\n\t\\ \xc3\xa9 \xf0\x9f\x98\x80", sequence<float>({1}, 0, 1.0)},
  };
  const SafetensorsMetadata metadata = {
      {"config", "[model]\nname = \"x\"\n"}, {"empty", ""}, {"unicode \xe2\x82\xac", "\x01\x1f"}};
  write_safetensors(path("a.safetensors"), tensors, metadata);

  const std::string bytes = read_bytes(path("a.safetensors"));
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  EXPECT_EQ(header_size % 8, 0u) << "the buffer must start 8-byte aligned";
  size_t data = 0;
  for (const auto& [name, t] : tensors) data += t.bytes();
  EXPECT_EQ(bytes.size(), 8 + header_size + data);

  const SafetensorsFile f = SafetensorsFile::read(path("a.safetensors"));
  EXPECT_EQ(f.metadata(), metadata);
  ASSERT_EQ(f.entries().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(f.entries()[i].name, tensors[i].first) << "entries keep the order written";
    expect_same_tensor(tensors[i].second, f.tensor(tensors[i].first), tensors[i].first);
  }
  EXPECT_EQ(f.entries()[1].dtype, "F64");
  EXPECT_EQ(f.entries()[2].dtype, "I32");
  EXPECT_TRUE(f.entries()[3].shape.empty());
  EXPECT_EQ(f.entries()[4].begin, f.entries()[4].end);
  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_TRUE(contains(error_message([&] { f.tensor("nope"); }), path("a.safetensors")));
  EXPECT_TRUE(contains(error_message([&] { f.metadata_value("nope"); }), "metadata has no key"));
  EXPECT_TRUE(leftovers(dir_).empty());
}

TEST_F(Safetensors, EmptyFileRoundTrips) {
  write_safetensors(path("e.safetensors"), {});
  EXPECT_EQ(read_bytes(path("e.safetensors")).size(), 16u);  // "{}" padded to 8
  const SafetensorsFile f = SafetensorsFile::read(path("e.safetensors"));
  EXPECT_TRUE(f.entries().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST_F(Safetensors, WritesDeviceTensors) {
  if (!cuda_available()) GTEST_SKIP() << cuda_unavailable_reason();
  const Tensor host = sequence<float>({3, 5}, 0.5, -1.0);
  write_safetensors(path("d.safetensors"), {{"w", host.to(Device::CUDA)}});
  expect_same_tensor(host, SafetensorsFile::read(path("d.safetensors")).tensor("w"), "w");
}

TEST_F(Safetensors, WriterRejectsBadNames) {
  const Tensor t = Tensor::zeros({2});
  EXPECT_TRUE(contains(error_message([&] {
                         write_safetensors(path("x"), {{"a", t}, {"a", t}});
                       }),
                       "duplicate tensor name \"a\""));
  EXPECT_TRUE(contains(error_message([&] {
                         write_safetensors(path("x"), {{"__metadata__", t}});
                       }),
                       "invalid tensor name"));
  EXPECT_TRUE(contains(error_message([&] {
                         write_safetensors(path("x"), {{"u", Tensor()}});
                       }),
                       "is undefined"));
  EXPECT_FALSE(fs::exists(path("x")));
  EXPECT_TRUE(leftovers(dir_).empty());
}

// One corrupt file and a phrase its error must contain (besides the file's path).
struct Corruption {
  const char* what;
  std::string bytes;
  const char* expected;
};

TEST_F(Safetensors, RejectsCorruptFilesNamingTheFile) {
  const std::string f32x2 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  const std::string buf8(8, '\0'), buf16(16, '\0');
  write_safetensors(path("good"), {{"a", Tensor::zeros({2})}, {"b", Tensor::zeros({2})}});
  const std::string good = read_bytes(path("good"));

  const std::vector<Corruption> cases = {
      {"shorter than the length field", "abc", "fewer than the 8-byte header length"},
      {"empty file", "", "truncated"},
      {"header length beyond the file", raw_file(f32x2, buf8, 1000), "only"},
      {"header length over the limit", raw_file(f32x2, buf8, uint64_t(1) << 40),
       "exceeds the limit"},
      {"truncated buffer", good.substr(0, good.size() - 4), "beyond the"},
      {"truncated header", good.substr(0, 20), "only"},
      {"offsets out of range",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", buf8),
       "beyond the"},
      {"offsets end before they begin",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", buf8),
       "end before"},
      {"overlapping offsets",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                std::string(12, '\0')),
       "overlap"},
      {"duplicate offsets",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                buf8),
       "overlap"},
      {"a gap between tensors",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
                buf16),
       "belong to no tensor"},
      {"trailing bytes", raw_file(f32x2, buf16), "cover only 8"},
      {"size inconsistent with dtype and shape",
       raw_file("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", buf8),
       "need 16 bytes"},
      {"element count overflows",
       raw_file(
           "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
           buf8),
       "too many elements"},
      {"unknown dtype",
       raw_file("{\"a\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", buf8),
       "unknown or unsupported dtype \"F17\""},
      {"not an object", raw_file("[1, 2]  ", ""), "must start with '{'"},
      {"missing colon", raw_file("{\"a\" {}}", ""), "expected ':'"},
      {"trailing comma", raw_file(f32x2.substr(0, f32x2.size() - 1) + ",}", buf8),
       "expected a string"},
      {"unterminated string", raw_file("{\"a", ""), "unterminated string"},
      {"invalid escape", raw_file("{\"a\\q\":{}}", ""), "invalid escape"},
      {"unpaired surrogate", raw_file("{\"\\ud800\":{}}", ""), "surrogate"},
      {"control character", raw_file("{\"a\nb\":{}}", ""), "control character"},
      {"invalid UTF-8", raw_file("{\"\xff\":{}}", ""), "not valid UTF-8"},
      {"fraction in a shape",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", buf8),
       "fraction"},
      {"negative offset",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,8]}}", buf8),
       "expected a non-negative integer"},
      {"leading zero",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", buf8),
       "leading zero"},
      {"integer overflow",
       raw_file(
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999]}}",
           buf8),
       "integer too large"},
      {"three offsets",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", buf8),
       "must be [begin, end]"},
      {"missing field", raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", buf8),
       "lacks \"data_offsets\""},
      {"unknown field",
       raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":[]}}", buf8),
       "unknown field \"x\""},
      {"repeated field",
       raw_file(
           "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
           buf8),
       "repeats field"},
      {"duplicate tensor",
       raw_file(f32x2.substr(0, f32x2.size() - 1) + "," + f32x2.substr(1), buf8),
       "duplicate tensor name \"a\""},
      {"metadata value not a string", raw_file("{\"__metadata__\":{\"k\":1}}", ""),
       "metadata values must be strings"},
      {"duplicate metadata key", raw_file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", ""),
       "duplicate metadata key"},
      {"garbage after the object", raw_file("{}x", ""), "after the header object"},
      {"unclosed object", raw_file("{\"__metadata__\":{}", ""), "expected ',' or '}'"},
  };
  for (const Corruption& c : cases) {
    const std::string p = path("corrupt.safetensors");
    write_bytes(p, c.bytes);
    const std::string message = error_message([&] { SafetensorsFile::read(p); });
    EXPECT_TRUE(contains(message, p)) << c.what;
    EXPECT_TRUE(contains(message, c.expected)) << c.what;
    EXPECT_EQ(message.find('\n'), std::string::npos) << c.what << ": the message must be one line";
  }
}

TEST_F(Safetensors, SyntaxErrorsGiveTheByteOffset) {
  const std::string p = path("bad.safetensors");
  write_bytes(p, raw_file("{\"a\" {}}", ""));
  // The header starts at byte 8; the '{' that should have been ':' is at header offset 5.
  EXPECT_TRUE(contains(error_message([&] { SafetensorsFile::read(p); }), "(at byte 13)"));
}

TEST_F(Safetensors, DecodesJsonEscapes) {
  const std::string p = path("escapes.safetensors");
  write_bytes(p, raw_file("{\"__metadata__\":{\"k\":\"\\u00e9\\ud83d\\ude00\\/\\n\\\"\"},"
                          "\"a\\tb\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                          "z"));
  const SafetensorsFile f = SafetensorsFile::read(p);
  EXPECT_EQ(f.metadata_value("k"), "\xc3\xa9\xf0\x9f\x98\x80/\n\"");
  ASSERT_EQ(f.entries().size(), 1u);
  EXPECT_EQ(f.entries()[0].name, "a\tb");
}

// Every truncation and many single-byte corruptions of a valid file either parse or throw a
// polytask::Error naming the file: never a crash or another exception.
TEST_F(Safetensors, ArbitraryDamageNeverCrashes) {
  write_safetensors(path("v"), {{"a", sequence<float>({2, 3}, 1, 0)}, {"b", Tensor::zeros({1})}},
                    {{"k", "v"}});
  const std::string good = read_bytes(path("v"));
  std::vector<std::string> damaged;
  for (size_t n = 0; n < good.size(); ++n) damaged.push_back(good.substr(0, n));
  for (size_t i = 0; i < good.size(); ++i)
    for (unsigned flip : {0x01u, 0x20u, 0x80u, 0xffu}) {
      std::string d = good;
      d[i] = char(static_cast<unsigned char>(d[i]) ^ flip);
      damaged.push_back(d);
    }
  size_t rejected = 0;
  for (const std::string& d : damaged) {
    try {
      SafetensorsFile::parse(d, "damaged.safetensors");
    } catch (const Error& e) {
      ++rejected;
      ASSERT_TRUE(contains(e.what(), "damaged.safetensors"));
    }
  }
  EXPECT_GT(rejected, good.size());  // every truncation, and most flips outside the data
}

TEST_F(Safetensors, ParsesDtypesPolytaskCannotHold) {
  const std::string p = path("f16.safetensors");
  write_bytes(p, raw_file("{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}",
                          std::string(8, 'x')));
  const SafetensorsFile f = SafetensorsFile::read(p);
  ASSERT_EQ(f.entries().size(), 1u);
  EXPECT_EQ(f.entries()[0].dtype, "F16");
  EXPECT_EQ(std::string(f.data(f.entries()[0]), 8), std::string(8, 'x'));
  const std::string message = error_message([&] { f.tensor("h"); });
  EXPECT_TRUE(contains(message, p));
  EXPECT_TRUE(contains(message, "dtype F16, which polytask cannot load"));
}

TEST_F(Safetensors, MissingOrUnreadableFilesNameThePath) {
  EXPECT_TRUE(contains(error_message([&] { SafetensorsFile::read(path("absent")); }),
                       "cannot open " + path("absent")));
  EXPECT_TRUE(contains(error_message([&] { SafetensorsFile::read(dir_); }), "is a directory"));
}

// --------------------------------------------------------------------------- atomic writes

TEST_F(Safetensors, OverwritingReplacesTheFileAndLeavesNoTemporary) {
  write_safetensors(path("m.safetensors"), {{"w", sequence<float>({3}, 1, 0)}});
  write_safetensors(path("m.safetensors"), {{"w", sequence<float>({4}, 2, 0)}});
  EXPECT_EQ(SafetensorsFile::read(path("m.safetensors")).tensor("w").numel(), 4);
  EXPECT_TRUE(leftovers(dir_).empty());
}

// A real write failure without root privileges or a full disk: RLIMIT_FSIZE makes write(2)
// fail with EFBIG past the limit (SIGXFSZ ignored), as ENOSPC would on a full disk.
TEST_F(Safetensors, FailedWriteKeepsThePreviousFile) {
  const std::string target = path("model.safetensors");
  write_safetensors(target, {{"w", sequence<float>({4}, 1, 0)}}, {{"version", "old"}});
  const std::string before = read_bytes(target);

  const Tensor large = sequence<float>({64, 1024}, 1, 0);  // 256 KiB
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit limited = saved;
  limited.rlim_cur = 16 * 1024;
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  std::string message;
  try {
    write_safetensors(target, {{"w", large}}, {{"version", "new"}});
  } catch (const Error& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(contains(message, "cannot write " + target)) << "no error was thrown";
  EXPECT_TRUE(contains(message, std::strerror(EFBIG)));
  EXPECT_EQ(read_bytes(target), before) << "the previous file must be untouched";
  EXPECT_EQ(SafetensorsFile::read(target).metadata_value("version"), "old");
  EXPECT_TRUE(leftovers(dir_).empty());
}

TEST_F(Safetensors, UncreatableTemporaryNamesThePath) {
  const std::string target = path("no/such/dir/model.safetensors");
  const std::string message = error_message([&] {
    write_safetensors(target, {{"w", Tensor::zeros({1})}});
  });
  EXPECT_TRUE(contains(message, "cannot write " + target));
  EXPECT_TRUE(contains(message, std::strerror(ENOENT)));
}

TEST_F(Safetensors, FailedRenameRemovesTheTemporary) {
  const std::string target = path("occupied");
  fs::create_directories(fs::path(target) / "child");  // rename(file, non-empty dir) fails
  const std::string message = error_message([&] {
    write_safetensors(target, {{"w", Tensor::zeros({1})}});
  });
  EXPECT_TRUE(contains(message, "cannot write " + target));
  EXPECT_TRUE(contains(message, "renaming"));
  EXPECT_TRUE(fs::is_directory(fs::path(target) / "child"));
  EXPECT_TRUE(leftovers(dir_).empty());
}

TEST_F(Safetensors, UncommittedAtomicFileLeavesNothing) {
  {
    AtomicFile f(path("never"));
    f.write("abc", 3);
    EXPECT_TRUE(fs::exists(f.temp_path()));
  }
  EXPECT_FALSE(fs::exists(path("never")));
  EXPECT_TRUE(leftovers(dir_).empty());
}

// --------------------------------------------------------------------------- Python interop

const std::string& python_with_safetensors() {
  static const std::string found = testing::python_that_imports("safetensors, numpy");
  return found;
}

std::string interop_script() {
  return std::string(POLYTASK_SOURCE_DIR) + "/tests/engine/safetensors_interop.py";
}

TEST_F(Safetensors, PythonReadsWhatWeWrite) {
  const std::string& py = python_with_safetensors();
  if (py.empty())
    GTEST_SKIP() << "neither python3 nor /usr/bin/python3 can import safetensors and numpy "
                    "(pip install safetensors numpy)";
  ASSERT_TRUE(fs::exists(interop_script())) << interop_script();
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"conv.weight", sequence<float>({4, 1, 3, 3}, 0.1, -2.0)},
      {"f64", sequence<double>({2, 1, 3}, 1.0 / 3.0, 1e-300)},
      {"labels", sequence<int32_t>({5}, -3.0, 7.0)},
      {"odd", sequence<int32_t>({3}, 1.0, 0.0)},
      {"scalar", sequence<float>({}, 0, 42.5)},
      {"empty", Tensor::zeros({0, 3}, DType::F32)},
      {"quoted \"name\" \xc3\xa9", sequence<float>({1, 2}, 1, 0)},
  };
  const SafetensorsMetadata metadata = {{"config", "a = \"b\"\n"}, {"step", "3"}};
  write_safetensors(path("ours.safetensors"), tensors, metadata);

  const auto [status, out] =
      run_command(cat(py, " '", interop_script(), "' roundtrip '", path("ours.safetensors"), "' '",
                      path("theirs.safetensors"), "'"));
  ASSERT_EQ(status, 0) << out;
  EXPECT_TRUE(contains(out, "\"conv.weight\": {\"dtype\": \"float32\", \"shape\": [4, 1, 3, 3]}"));
  EXPECT_TRUE(contains(out, "\"f64\": {\"dtype\": \"float64\", \"shape\": [2, 1, 3]}"));
  EXPECT_TRUE(contains(out, "\"labels\": {\"dtype\": \"int32\", \"shape\": [5]}"));
  EXPECT_TRUE(contains(out, "\"scalar\": {\"dtype\": \"float32\", \"shape\": []}"));
  EXPECT_TRUE(contains(out, "\"empty\": {\"dtype\": \"float32\", \"shape\": [0, 3]}"));
  EXPECT_TRUE(contains(out, "\"step\": \"3\""));

  // Python wrote the arrays back: the values it read are bit-identical to ours.
  const SafetensorsFile theirs = SafetensorsFile::read(path("theirs.safetensors"));
  EXPECT_EQ(theirs.metadata(), metadata);
  EXPECT_EQ(theirs.entries().size(), tensors.size());
  for (const auto& [name, t] : tensors) expect_same_tensor(t, theirs.tensor(name), name);
}

TEST_F(Safetensors, WeReadWhatPythonWrites) {
  const std::string& py = python_with_safetensors();
  if (py.empty())
    GTEST_SKIP() << "neither python3 nor /usr/bin/python3 can import safetensors and numpy "
                    "(pip install safetensors numpy)";
  const auto [status, out] =
      run_command(cat(py, " '", interop_script(), "' write '", path("ref.safetensors"), "'"));
  ASSERT_EQ(status, 0) << out;
  const SafetensorsFile f = SafetensorsFile::read(path("ref.safetensors"));
  EXPECT_EQ(f.metadata_value("written_by"), "safetensors.numpy");
  EXPECT_EQ(f.metadata_value("note"), "a\nb");
  EXPECT_EQ(f.entries().size(), 8u);

  std::vector<float> f32(6);
  for (size_t i = 0; i < 6; ++i) f32[i] = float(i) * 0.5f;
  expect_same_tensor(Tensor::from_vector<float>({2, 3}, f32), f.tensor("f32"), "f32");
  std::vector<double> f64(24);
  for (size_t i = 0; i < 24; ++i) f64[i] = double(i) - 7.25;
  expect_same_tensor(Tensor::from_vector<double>({2, 3, 4}, f64), f.tensor("f64"), "f64");
  expect_same_tensor(Tensor::from_vector<int32_t>({5}, {-3, 0, 7, 2147483647, -2147483647 - 1}),
                     f.tensor("i32"), "i32");
  expect_same_tensor(Tensor::from_vector<float>({}, {3.5f}), f.tensor("scalar"), "scalar");
  EXPECT_EQ(f.tensor("empty").shape(), Shape({0, 4}));
  expect_same_tensor(Tensor::from_vector<float>({1, 1, 1, 2}, {9.0f, 9.0f}),
                     f.tensor("layer.0/weight \"quoted\" \xc3\xa9"), "quoted");
  ASSERT_NE(f.find("f16"), nullptr);
  EXPECT_EQ(f.find("f16")->dtype, "F16");
  EXPECT_EQ(f.find("i64")->dtype, "I64");
  EXPECT_TRUE(contains(error_message([&] { f.tensor("i64"); }), "cannot load"));
}

}  // namespace
}  // namespace polytask
