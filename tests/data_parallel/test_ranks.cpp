// Run by mpirun with two ranks (tests/CMakeLists.txt): the engine's data-parallel path against
// one process, in the library itself — on the CPU and, in the build over the CUDA emulator, on
// the (emulated) GPU, where the losses, the Gram matrix and the gradients are summed from device
// memory (MPI through host copies there: NCCL needs a real GPU). Each rank also trains the
// single-process reference itself, so both ranks check.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <thread>

#include "comm/launch.h"
#include "datasets/synthetic.h"
#include "engine/balancer.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "models/config.h"

namespace polytask {
namespace {

Communicator* world = nullptr;  // the job's, from main()

struct TrainedRun {
  std::unique_ptr<Network> network;
  std::vector<EpochLog> logs;
  std::vector<TaskTotals> test;
};

// two-input-cls-reg (dense layers, a classification and a regression head) for 2 epochs of 5
// steps with an odd last batch (37 training rows, global batch 8: the last 5 rows go 3 + 2).
TrainedRun train(Device device, const std::string& balancer, Communicator* comm) {
  const models::ModelConfig config = models::preset_config("two-input-cls-reg");
  NetworkOptions options;
  options.max_batch = 8;
  options.seed = 11;
  options.device = device;
  const Dataset data = datasets::synthetic_two_input(41, 7);
  TrainedRun run;
  run.network = std::make_unique<Network>(models::build_model(config, {{"a", {50}}, {"b", {100}}}),
                                          config.tasks, options);
  Network& net = *run.network;
  BalancerOptions b;
  b.name = balancer;
  b.lr = 0.01;
  net.fan_out().set_balancer(make_balancer(b));
  net.set_communicator(comm);
  kernels::AdamParams adam;
  adam.lr = 3e-3f;
  Adam optimizer(adam);
  Trainer trainer(net, optimizer);
  FitOptions fit;
  fit.epochs = 2;
  fit.batch_size = 8;
  fit.validation_split = 0.1;
  fit.seed = 5;
  run.logs = trainer.fit(data, fit);
  run.test = trainer.evaluate(datasets::synthetic_two_input(23, 8), 8);
  return run;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::abs(x)));
  return m;
}

void expect_same_model(const TrainedRun& one, const TrainedRun& two, const std::string& what) {
  const auto& a = one.network->parameters().all;
  const auto& b = two.network->parameters().all;
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<float> x = a[i]->value.to_vector<float>(), y = b[i]->value.to_vector<float>();
    const double scale = std::max(max_abs(x), 1e-3);
    double worst = 0;
    for (size_t k = 0; k < x.size(); ++k) worst = std::max(worst, double(std::abs(x[k] - y[k])));
    EXPECT_LE(worst, 1e-4 * scale) << what << ": " << a[i]->name;
  }
  for (size_t e = 0; e < one.logs.size(); ++e) {
    EXPECT_NEAR(two.logs[e].train_loss, one.logs[e].train_loss, 1e-5) << what << " epoch " << e;
    EXPECT_NEAR(two.logs[e].validation_loss, one.logs[e].validation_loss, 1e-5) << what;
    for (size_t t = 0; t < one.logs[e].train.size(); ++t) {
      EXPECT_EQ(two.logs[e].train[t].examples, one.logs[e].train[t].examples);
      EXPECT_EQ(two.logs[e].validation[t].examples, one.logs[e].validation[t].examples);
      EXPECT_NEAR(two.logs[e].balance.weights[t], one.logs[e].balance.weights[t], 1e-5) << what;
      EXPECT_NEAR(two.logs[e].balance.grad_norm[t], one.logs[e].balance.grad_norm[t],
                  1e-5 * one.logs[e].balance.grad_norm[t])
          << what;
    }
  }
  for (size_t t = 0; t < one.test.size(); ++t) {
    EXPECT_EQ(two.test[t].examples, one.test[t].examples) << what;
    EXPECT_NEAR(two.test[t].loss(), one.test[t].loss(), 1e-5) << what;
  }
}

class TwoRanks : public ::testing::TestWithParam<std::string> {};

TEST_P(TwoRanks, TrainLikeOneProcess) {
  ASSERT_EQ(world->size(), 2);
  const Device device =
#if defined(POLYTASK_TEST_ON_GPU)
      Device::CUDA;
#else
      Device::CPU;
#endif
  const TrainedRun one = train(device, GetParam(), nullptr);
  const TrainedRun two = train(device, GetParam(), world);
  expect_same_model(one, two, GetParam());
  // A model nobody else would have: the ranks' parameters are the same bits.
  std::vector<float> mine = two.network->parameters().values.to_vector<float>();
  std::vector<float> sum = mine;
  world->allreduce_sum(sum.data(), sum.size(), "the test's parameters");
  for (size_t k = 0; k < mine.size(); ++k) ASSERT_EQ(sum[k], 2 * mine[k]) << k;
}

// static seeds from the host; the others run on the device on a GPU (their state, the global
// losses and the Gram matrix there).
INSTANTIATE_TEST_SUITE_P(Balancers, TwoRanks,
                         ::testing::Values("static", "dynamic", "uncertainty", "gradnorm", "dwa",
                                           "pcgrad", "mgda", "upgrad", "famo", "cagrad", "nash-mtl",
                                           "imtl", "aligned-mtl", "rlw", "static-from-norms"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(Ranks, ACollectiveNobodyJoinsTimesOut) {
  // Rank 1 skips the sum rank 0 enters: rank 0 gives up after the timeout, naming it; then
  // rank 1 joins so the job can go on.
  world->set_timeout_seconds(1);
  if (world->rank() == 0) {
    // Static: the abandoned sum completes later, when rank 1 joins, and writes here then.
    static double x = 1;
    try {
      world->allreduce_sum(&x, 1, "a lonely number");
      ADD_FAILURE() << "no timeout";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the sum of a lonely number waited 1 s"),
                std::string::npos)
          << e.what();
    }
  }
  world->set_timeout_seconds(60);
  double y = 1;
  if (world->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(4));  // well past rank 0's deadline
    world->allreduce_sum(&y, 1, "the late join");          // completes rank 0's
  }
  world->barrier("the end of the timeout test");
}

}  // namespace
}  // namespace polytask

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const polytask::comm::LaunchEnvironment env = polytask::comm::launch_environment();
  if (!env.launched || env.size != 2) {
    std::fprintf(stderr, "run me with mpirun -np 2\n");
    return 1;
  }
  auto comm = polytask::comm::connect(polytask::Device::CPU, 120);
  polytask::world = comm.get();
  // Only rank 0 reports (both check).
  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  std::vector<double> any = {double(failed)};
  comm->allreduce_sum(any.data(), 1, "the test results");
  return any[0] > 0 ? 1 : 0;
}
