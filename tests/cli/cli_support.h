// What the end-to-end tests of the polytask binary share: running it (POLYTASK_CLI) and
// reading what it wrote, in a temporary directory per test.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace cli_test {

namespace fs = std::filesystem;

struct Result {
  int code = -1;  // the exit status; -1 when killed by a signal
  std::string out;  // stdout and stderr together
};

// Runs `polytask ARGS`, with `env` ("NAME=value ...", for the shell) in its environment.
inline Result polytask(const std::string& args, const std::string& env = "") {
  const std::string command = env + (env.empty() ? "" : " ") + std::string(POLYTASK_CLI) + " " +
                              args + " 2>&1";
  Result r;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The value of "key": number in a JSON line.
inline double field(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) return NAN;
  return std::stod(json.substr(at + key.size() + 4));
}

// A line without its "seconds" field, for comparing runs.
inline std::string without_seconds(std::string json) {
  const auto at = json.find("\"seconds\": ");
  const auto end = json.find(", ", at);
  return json.erase(at, end + 2 - at);
}

inline std::string last_line_starting(const std::string& text, const std::string& prefix) {
  std::string found;
  for (const auto& l : lines(text))
    if (l.rfind(prefix, 0) == 0) found = l;
  return found;
}

// One line on stderr naming the problem, a non-zero exit, nothing overwritten.
inline void expect_one_line_error(const Result& r, int code, const std::string& mentions) {
  EXPECT_EQ(r.code, code) << r.out;
  EXPECT_EQ(lines(r.out).size(), 1u) << r.out;
  EXPECT_NE(r.out.find(mentions), std::string::npos) << r.out;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("polytask-cli-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Small, fast settings shared by the end-to-end runs.
  static constexpr const char* kQuick = "--data synthetic:digits --limit 512 --batch-size 64 --seed 3 --device cpu";

  fs::path dir_;
};

}  // namespace cli_test
