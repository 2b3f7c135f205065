// End to end: a run killed at any point of a checkpoint save resumes and continues exactly as
// if it had not been (POLYTASK_TEST_CHECKPOINT_FAULT ends the process there, as a kill would:
// engine/checkpoint_layout.h); leftovers of dead writers are cleaned up; a run that cannot be
// written to fails before it trains; a full disk during a save fails with one line and the run
// resumes from the previous checkpoint.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "tests/cli/cli_support.h"

namespace {

using namespace cli_test;

constexpr int kFaultExit = 86;  // kCheckpointFaultExitCode

// `train --resume OUT --epochs 2` succeeds and ends with the uninterrupted run's metrics
// (`straight`, its metrics.jsonl lines), seconds aside.
void expect_resumes_like(const std::string& out, const std::vector<std::string>& straight) {
  const Result resumed = polytask("train --resume '" + out + "' --epochs 2");
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  const auto after = lines(read(fs::path(out) / "metrics.jsonl"));
  ASSERT_EQ(after.size(), straight.size());
  for (size_t i = 0; i < after.size(); ++i)
    EXPECT_EQ(without_seconds(after[i]), without_seconds(straight[i])) << "epoch " << i + 1;
}

TEST_F(Cli, AKillDuringASaveLeavesARunThatResumesExactly) {
  const std::string fixed = std::string(kQuick) + " --preset fashion-type-brightness --limit 256";
  ASSERT_EQ(polytask("train --epochs 2 " + fixed + " --out " + path("straight")).code, 0);
  const auto straight = lines(read(dir_ / "straight" / "metrics.jsonl"));
  ASSERT_EQ(straight.size(), 2u);
  // Saves: 1 = the untrained model (epoch 0), 2 = after epoch 1, 3 = after epoch 2.
  for (const char* fault : {"model-written:1", "state-written:2", "before-switch:3",
                            "after-switch:2", "between-links:1", "between-links:3"}) {
    SCOPED_TRACE(fault);
    const std::string out = path(std::string("killed-") + fault);
    const Result killed = polytask("train --epochs 2 " + fixed + " --out '" + out + "'",
                                   std::string("POLYTASK_TEST_CHECKPOINT_FAULT=exit:") + fault);
    ASSERT_EQ(killed.code, kFaultExit) << killed.out;
    expect_resumes_like(out, straight);
    const Result eval = polytask("eval --run '" + out + "'");
    EXPECT_EQ(eval.code, 0) << eval.out;
  }
}

TEST_F(Cli, AFullDiskDuringASaveFailsWithOneLineAndTheRunResumes) {
  const std::string fixed = std::string(kQuick) + " --preset fashion-type-brightness --limit 256";
  ASSERT_EQ(polytask("train --epochs 2 " + fixed + " --out " + path("straight")).code, 0);
  const auto straight = lines(read(dir_ / "straight" / "metrics.jsonl"));
  ASSERT_EQ(straight.size(), 2u);
  // The n-th fsync of the run fails with ENOSPC: the first checkpoint's files (3), the second
  // checkpoint's model file (6), metrics.jsonl after epoch 2 (8), the last state file (10).
  int resumed_runs = 0;
  for (const int n : {3, 6, 8, 10}) {
    SCOPED_TRACE(n);
    const std::string out = path("full-" + std::to_string(n));
    const Result full = polytask("train --epochs 2 " + fixed + " --out " + out,
                                 "POLYTASK_TEST_CHECKPOINT_FAULT=enospc:file-sync:" + std::to_string(n));
    ASSERT_EQ(full.code, 1) << full.out;
    const std::string last = lines(full.out).back();
    EXPECT_EQ(last.rfind("polytask train: error: cannot write ", 0), 0u) << full.out;
    EXPECT_NE(last.find(std::strerror(ENOSPC)), std::string::npos) << full.out;
    if (!fs::exists(fs::path(out) / "current")) continue;  // failed before any checkpoint
    expect_resumes_like(out, straight);
    ++resumed_runs;
  }
  EXPECT_GE(resumed_runs, 2);
}

TEST_F(Cli, TemporaryFilesOfDeadProcessesAreRemovedWhenTheRunIsOpened) {
  ASSERT_EQ(polytask(std::string("train --epochs 1 ") + kQuick + " --out " + path("run")).code, 0);
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);  // `child` is now a pid of no process
  const std::string stale = path("run/metrics.jsonl.tmp-" + std::to_string(child));
  std::ofstream(stale) << "half a line";
  ASSERT_EQ(polytask("train --resume " + path("run") + " --epochs 2").code, 0);
  EXPECT_FALSE(fs::exists(stale));
}

TEST_F(Cli, ResumingARunThatCannotBeWrittenFailsBeforeTraining) {
  ASSERT_EQ(polytask(std::string("train --epochs 1 ") + kQuick + " --out " + path("run")).code, 0);
  const std::string before = read(dir_ / "run" / "training_state.safetensors");
  ::chmod(path("run").c_str(), 0555);
  // root ignores permissions; an immutable directory stops it too.
  const bool immutable = ::geteuid() == 0 &&
                         std::system(("chattr +i '" + path("run") + "' 2>/dev/null").c_str()) == 0;
  if (std::ofstream(path("run/probe"))) {
    fs::remove(path("run/probe"));
    ::chmod(path("run").c_str(), 0755);
    GTEST_SKIP() << "cannot make a directory read-only here (root without chattr)";
  }
  const Result r = polytask("train --resume " + path("run") + " --epochs 3");
  if (immutable) (void)std::system(("chattr -i '" + path("run") + "'").c_str());
  ::chmod(path("run").c_str(), 0755);
  expect_one_line_error(r, 1, path("run"));  // one line: no epoch was trained
  EXPECT_EQ(r.out.find("Epoch 2/3"), std::string::npos) << r.out;
  EXPECT_EQ(read(dir_ / "run" / "training_state.safetensors"), before);
}

}  // namespace
