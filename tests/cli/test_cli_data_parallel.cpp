// Data-parallel training end to end: `mpirun --oversubscribe -np 2 polytask train ...` against
// the same command in one process, on this machine's cores.
//
// The tolerance: a 2-rank step sums the same float numbers as one process, in another order
// (each rank's half of every batch sum, then the two halves), so the runs drift apart by a few
// float roundings per step. After the short runs here every parameter tensor stays within
// 1e-3 of its L2 norm (measured: at most 6e-5) and every test metric within 2e-3.
//
// The equivalence runs use SGD. Adam divides each gradient element by its own running RMS, so
// an element that is rounding noise in both runs (a convolution's bias in front of a
// BatchNorm has a zero gradient in exact arithmetic) moves by up to the learning rate per step
// in a direction the rounding picks: any two runs that round differently — one process with 1
// or 2 threads too — then differ in that bias and in the BatchNorm running mean that follows
// it, and a few near-tie test predictions flip. One Adam run on a preset without BatchNorm
// checks Adam under the same tolerance. Such a bias, and its running mean, is held to
// |Δ| <= lr · steps in every run.
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <thread>

#include "cli_support.h"
#include "engine/safetensors.h"

namespace {

namespace fs = std::filesystem;
using cli_test::field;
using cli_test::lines;
using cli_test::read;
using cli_test::Result;

constexpr double kParameterTolerance = 1e-3;  // ‖a − b‖ / ‖a‖ per tensor
constexpr double kMetricTolerance = 2e-3;
constexpr double kZeroGradientDrift = 0.005 * 20;  // lr · steps of the short runs below

#if defined(POLYTASK_MPIEXEC)
// OpenMPI refuses to start as root without the first two (CI and containers run as root). The
// rest is for the sanitizer job (scripts/ci-reliability.sh): OpenMPI keeps allocations past
// MPI_Finalize in components it then unloads, which LeakSanitizer reports with one-frame stacks
// in "unknown modules"; kept loaded and unwound in full, their stacks name OpenMPI's libraries,
// which tests/lsan.supp lists.
const std::string kMpiEnv =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
    "OMPI_MCA_mca_base_component_disable_dlclose=1 "
    "ASAN_OPTIONS=\"$ASAN_OPTIONS:fast_unwind_on_malloc=0\"";
const std::string kMpirun = std::string(POLYTASK_MPIEXEC) + " --oversubscribe -np 2 ";
const std::string kMpirun1 = std::string(POLYTASK_MPIEXEC) + " -np 1 ";
#endif

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
#if !defined(POLYTASK_MPIEXEC)
    GTEST_SKIP() << "this build has no MPI (install libopenmpi-dev and reconfigure)";
#else
    dir_ = fs::temp_directory_path() /
           ("polytask-dp-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
#endif
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

#if defined(POLYTASK_MPIEXEC)
  // `polytask ARGS` under mpirun with two ranks.
  static Result ranks2(const std::string& args) {
    return cli_test::polytask(args, kMpiEnv + " " + kMpirun);
  }
#endif
  static Result single(const std::string& args) { return cli_test::polytask(args); }

  // The largest ‖a − b‖ / ‖a‖ (L2) over the tensors of two runs' model.safetensors, and
  // whether every tensor is bit for bit the same.
  struct Difference {
    double worst = 0;
    std::string tensor;
    bool identical = true;
  };
  static double largest_change(const std::vector<float>& u, const std::vector<float>& v) {
    double m = 0;
    for (size_t i = 0; i < u.size(); ++i) m = std::max(m, std::abs(double(u[i]) - v[i]));
    return m;
  }
  Difference compare(const std::string& run_a, const std::string& run_b) const {
    const auto a = polytask::SafetensorsFile::read(path(run_a) + "/model.safetensors");
    const auto b = polytask::SafetensorsFile::read(path(run_b) + "/model.safetensors");
    Difference d;
    EXPECT_EQ(a.entries().size(), b.entries().size());
    for (const auto& entry : a.entries()) {
      const polytask::Tensor x = a.tensor(entry.name), y = b.tensor(entry.name);
      const std::vector<float> u = x.to_vector<float>(), v = y.to_vector<float>();
      EXPECT_EQ(u.size(), v.size()) << entry.name;
      if (u.size() != v.size()) continue;
      double norm = 0, diff = 0;
      for (size_t i = 0; i < u.size(); ++i) {
        norm += double(u[i]) * u[i];
        diff += (double(u[i]) - v[i]) * (double(u[i]) - v[i]);
        d.identical = d.identical && std::memcmp(&u[i], &v[i], sizeof(float)) == 0;
      }
      double relative = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
      const bool may_be_noise =
          entry.name.ends_with(".bias") || entry.name.ends_with(".running_mean");
      if (may_be_noise && largest_change(u, v) <= kZeroGradientDrift) relative = 0;
      if (relative > d.worst) d.worst = relative, d.tensor = entry.name;
    }
    return d;
  }

  // Every test metric of two runs (test_metrics.json) within kMetricTolerance of its size
  // (at least 1), an accuracy within one example: a prediction at a near-tie may flip.
  void expect_same_test_metrics(const std::string& run_a, const std::string& run_b,
                                const std::string& what) const {
    const std::string a = read(path(run_a) + "/test_metrics.json");
    const std::string b = read(path(run_b) + "/test_metrics.json");
    ASSERT_FALSE(a.empty()) << what;
    const double examples = field(a, "examples");
    size_t checked = 0;
    for (size_t at = a.find("\"", 1); at != std::string::npos; at = a.find(", \"", at + 1)) {
      const size_t begin = a.find('"', at) + 1;
      const std::string key = a.substr(begin, a.find('"', begin) - begin);
      if (key == "seconds" || key == "examples") continue;
      const double tolerance = key.ends_with("accuracy")
                                   ? 1.01 / examples
                                   : kMetricTolerance * std::max(1.0, std::abs(field(a, key)));
      EXPECT_NEAR(field(b, key), field(a, key), tolerance) << what << ": " << key;
      ++checked;
    }
    EXPECT_GT(checked, 3u) << a;
  }

  // One process and two ranks on the same global batches: the same model.
  void expect_matches_one_process(const std::string& args, const std::string& what) {
    const std::string name = std::to_string(++runs_);
    const Result one = single(args + " --out " + path("one" + name));
    ASSERT_EQ(one.code, 0) << what << "\n" << one.out;
#if defined(POLYTASK_MPIEXEC)
    const Result two = ranks2(args + " --out " + path("two" + name));
    ASSERT_EQ(two.code, 0) << what << "\n" << two.out;
    EXPECT_NE(two.out.find("data-parallel: MPI"), std::string::npos) << two.out;
#endif
    const Difference d = compare("one" + name, "two" + name);
    EXPECT_LE(d.worst, kParameterTolerance) << what << ": " << d.tensor;
    std::cout << what << ": worst relative difference " << d.worst << " (" << d.tensor << ")\n";
    expect_same_test_metrics("one" + name, "two" + name, what);
  }

  fs::path dir_;
  int runs_ = 0;
};

#if defined(POLYTASK_MPIEXEC)

// Small runs: 2 epochs of 10 steps (global batch 32: 16 rows per rank).
constexpr const char* kShort =
    "--limit 352 --epochs 2 --batch-size 32 --val-split 0.1 --seed 5 "
    "--device cpu --no-tensorboard --threads 1";
// 2 epochs of 3 steps: the per-step strategies are sensitive to their inputs (Nash-MTL solves
// a nonlinear system on the Gram matrix, uncertainty and FAMO take Adam-like steps on their own
// weights), so rounding differences grow faster than with static weights; the epoch-level
// ones (dwa, dynamic, static-from-norms) need an epoch's end to act.
constexpr const char* kBalancerRuns =
    "--limit 106 --epochs 2 --batch-size 32 --val-split 0.1 "
    "--seed 5 --device cpu --no-tensorboard --threads 1";
constexpr const char* kSgd = " --optimizer sgd --lr 0.005 --momentum 0.9";

TEST_F(DataParallel, EveryPresetMatchesOneProcess) {
  const std::vector<std::pair<std::string, std::string>> presets = {
      {"mnist-digit-parity", "synthetic:digits"},
      {"mnist-digit-colour-residual", "synthetic:digits"},
      {"two-input-cls-reg", "synthetic:two-input"},
      {"cifar-object-colour", "synthetic:rgb"},
      {"fashion-type-brightness", "synthetic:digits"},
      {"fashion-three-tasks", "synthetic:digits"},
      {"multi-fashion", "multi:/usr/share/datasets/fashion-mnist"},
      {"synthetic-cls-reg", "synthetic:rgb"}};
  for (const auto& [preset, data] : presets)
    // BatchNorm over the global batch, which is what one process computes.
    expect_matches_one_process(
        "train --preset " + preset + " --data " + data + " " + kShort + kSgd + " --sync-batchnorm",
        preset);
  expect_matches_one_process(std::string("train --preset mnist-digit-parity --data "
                                         "synthetic:digits --optimizer adam ") +
                                 kShort,
                             "mnist-digit-parity, adam");
}

TEST_F(DataParallel, EveryBalancerMatchesOneProcess) {
  // Three tasks with BatchNorm and Dropout: the losses, the Gram matrix at z and the BatchNorm
  // statistics are all summed over the ranks before anything decides.
  const Result listed = single("train --help");
  for (const char* balancer :
       {"static", "dynamic", "uncertainty", "gradnorm", "dwa", "pcgrad", "mgda", "upgrad", "famo",
        "cagrad", "nash-mtl", "imtl", "aligned-mtl", "rlw", "static-from-norms"}) {
    ASSERT_NE(listed.out.find(balancer), std::string::npos) << balancer;
    expect_matches_one_process(std::string("train --preset fashion-three-tasks --data "
                                           "synthetic:digits --sync-batchnorm --balancer ") +
                                   balancer + " " + kBalancerRuns + kSgd,
                               balancer);
  }
}

TEST_F(DataParallel, RepeatsBitForBitAndResumesExactly) {
  // The default per-rank BatchNorm statistics, Dropout, a learned balancer.
  const std::string args = std::string(
                               "train --preset fashion-type-brightness --data "
                               "synthetic:digits --balancer uncertainty ") +
                           kShort;
  const std::string three = std::regex_replace(args, std::regex("--epochs 2"), "--epochs 3");
  ASSERT_EQ(ranks2(three + " --out " + path("a")).code, 0);
  ASSERT_EQ(ranks2(three + " --out " + path("b")).code, 0);
  EXPECT_TRUE(compare("a", "b").identical);
  const Result first = ranks2(args + " --out " + path("resumed"));
  ASSERT_EQ(first.code, 0) << first.out;
  const Result rest = ranks2("train --resume " + path("resumed") + " --epochs 3");
  ASSERT_EQ(rest.code, 0) << rest.out;
  EXPECT_NE(rest.out.find("resuming after epoch 2"), std::string::npos) << rest.out;
  EXPECT_TRUE(compare("a", "resumed").identical);
  EXPECT_EQ(lines(read(path("a") + "/metrics.jsonl")).size(), 3u);
  EXPECT_EQ(cli_test::without_seconds(read(path("a") + "/test_metrics.json")),
            cli_test::without_seconds(read(path("resumed") + "/test_metrics.json")));
}

TEST_F(DataParallel, OneRankTakesTheWholePathAndGivesTheSingleProcessBits) {
  // Every sum over one rank is the number itself and its share of every batch is 1.
  const std::string args = std::string(
                               "train --preset fashion-three-tasks --data synthetic:digits "
                               "--balancer mgda --sync-batchnorm ") +
                           kShort;
  ASSERT_EQ(single(args + " --out " + path("one")).code, 0);
  const Result r = cli_test::polytask(args + " --out " + path("rank"), kMpiEnv + " " + kMpirun1);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("data-parallel: MPI"), std::string::npos) << r.out;
  EXPECT_TRUE(compare("one", "rank").identical);
}

TEST_F(DataParallel, OnlyRankZeroPrintsAndWrites) {
  const Result r =
      ranks2(std::string("train --preset mnist-digit-parity --data synthetic:digits ") + kShort +
             " --out " + path("run"));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto count = [&](const std::string& text) {
    size_t n = 0;
    for (size_t at = r.out.find(text); at != std::string::npos; at = r.out.find(text, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("Epoch 1/2"), 1u) << r.out;
  EXPECT_EQ(count("Test ("), 1u) << r.out;
  EXPECT_EQ(count("polytask: mnist-digit-parity"), 1u) << r.out;
  EXPECT_EQ(lines(read(path("run") + "/metrics.jsonl")).size(), 2u);
  EXPECT_TRUE(fs::exists(path("run") + "/test_metrics.json"));
}

TEST_F(DataParallel, ABatchWithFewerRowsThanRanksIsRefused) {
  // 352 rows, 10% for validation: 317 training rows; batch 2 ends with a batch of 1.
  const Result r = ranks2(std::string("train --preset two-input-cls-reg --data synthetic:two-input "
                                      "--limit 352 --batch-size 2 --epochs 1 --device cpu --out ") +
                          path("run"));
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("at least one row per rank"), std::string::npos) << r.out;
}

// The processes whose parent is `parent`, from /proc.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string pid, command, state;
    long ppid = 0;
    if (stat >> pid >> command >> state >> ppid && ppid == parent)
      children.push_back(pid_t(std::stol(name)));
  }
  return children;
}

// The pid of rank `rank` among the children of process `parent` (mpirun starts the ranks of
// a one-machine job itself), from their environment; -1 until it is found.
pid_t rank_pid(pid_t parent, int rank) {
  const std::string wanted = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const pid_t child : children_of(parent)) {
    std::ifstream environ("/proc/" + std::to_string(child) + "/environ");
    for (std::string var; std::getline(environ, var, '\0');)
      if (var == wanted) return child;
  }
  return -1;
}

// Starts a long 2-rank run in the background; once epoch 1 is printed, sends `sig` to rank 1;
// returns the job's exit status (-1: killed by a signal) and its output, or fails after 120 s.
Result run_and_signal_rank1(const std::string& args, int sig, const std::string& log) {
  const std::string command = kMpiEnv + " " + kMpirun + std::string(POLYTASK_CLI) + " " + args +
                              " > " + log + " 2>&1; echo $? > " + log + ".status";
  const pid_t shell = ::fork();
  if (shell == 0) {
    ::setpgid(0, 0);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), nullptr);
    ::_exit(127);
  }
  Result r;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  bool signalled = false;
  while (Clock::now() - start < std::chrono::seconds(120)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (fs::exists(log + ".status")) break;
    if (signalled || read(log).find("Epoch 1/") == std::string::npos) continue;
    // The shell's child is mpirun, whose children are the ranks.
    for (const pid_t mpirun : children_of(shell))
      if (const pid_t rank1 = rank_pid(mpirun, 1); rank1 > 0) {
        ::kill(rank1, sig);
        signalled = true;
      }
  }
  if (!fs::exists(log + ".status")) {
    ::kill(-shell, SIGKILL);
    ::waitpid(shell, nullptr, 0);
    r.out = "the job did not end within 120 s\n" + read(log);
    return r;
  }
  ::waitpid(shell, nullptr, 0);
  r.out = read(log);
  r.code = std::stoi(read(log + ".status"));
  EXPECT_TRUE(signalled) << r.out;
  return r;
}

TEST_F(DataParallel, AKilledRankEndsTheJob) {
  const Result r = run_and_signal_rank1(
      std::string("train --preset mnist-digit-parity --data synthetic:digits --limit 640 "
                  "--epochs 200 --batch-size 32 --device cpu --no-tensorboard --threads 1 "
                  "--out ") +
          path("run"),
      SIGKILL, path("log"));
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Epoch 1/200"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Epoch 200/200"), std::string::npos) << r.out;
  // mpirun names the rank that died.
  EXPECT_NE(r.out.find("rank 1"), std::string::npos) << r.out;
}

TEST_F(DataParallel, ARankThatStopsAnsweringTimesOutTheOthers) {
  // SIGSTOP: rank 1 hangs without dying, so only the collectives' deadline can end the job.
  const Result r = run_and_signal_rank1(
      std::string("train --preset mnist-digit-parity --data synthetic:digits --limit 640 "
                  "--epochs 200 --batch-size 32 --device cpu --no-tensorboard --threads 1 "
                  "--collective-timeout 3 --out ") +
          path("run"),
      SIGSTOP, path("log"));
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("polytask train (rank 0 of 2): error: the sum of"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("waited 3 s for the other ranks"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(path("run") + "/model.safetensors"));  // epoch 0's, never half-written
}

#endif  // POLYTASK_MPIEXEC

}  // namespace
