// Every gradient-balancing strategy on the CUDA backend: its per-step arithmetic runs in
// one-thread kernels on a device copy of its state (engine/fan_out.h), so a GPU step matches the
// CPU step, replays inside the step's CUDA graph with the same bits as plain launches, and reads
// nothing back per step. Built against a GPU (skips without one) and the CUDA emulator.
#include <gtest/gtest.h>

#include "engine/balancer.h"
#include "engine/device.h"
#include "tests/engine_cuda/two_input_fixtures.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask {
namespace {

using testing::all_close;

std::unique_ptr<Balancer> balancer(const std::string& name) {
  BalancerOptions b;
  b.name = name;
  b.lr = 0.05;  // the learned weights move visibly within the test's few steps
  return make_balancer(b);
}

// Three steps (two full batches and a short one) on each device from the same parameters and
// batches: the seeds, the Gram-matrix solve and the state updates are the same code on both,
// so only float summation order separates the gradients.
TEST(CudaBalancers, EveryStrategyStepsLikeTheCpu) {
  POLYTASK_REQUIRE_GPU();
  for (const std::string& name : balancer_names()) {
    Network cpu(two_input_model(), two_input_tasks(), options_on(Device::CPU));
    Network gpu(two_input_model(), two_input_tasks(), options_on(Device::CUDA));
    cpu.fan_out().set_balancer(balancer(name));
    gpu.fan_out().set_balancer(balancer(name));
    EXPECT_EQ(gpu.fan_out().balances_on_device(), name != "static") << name;
    Adam cpu_adam, gpu_adam;
    for (int64_t n : {kBatch, kBatch, kBatch - 5}) {
      const StepResult c = train_step(cpu, cpu_adam, n, uint64_t(40 + n));
      const StepResult g = train_step(gpu, gpu_adam, n, uint64_t(40 + n));
      EXPECT_TRUE(all_close(g.grads, c.grads, 1e-4, 1e-6)) << name << ", batch of " << n;
      EXPECT_TRUE(all_close(g.params, c.params, 1e-5, 1e-5)) << name << ", batch of " << n;
    }
    gpu.fan_out().sync_balancer_state();
    const auto cw = cpu.fan_out().balancer().weights(), gw = gpu.fan_out().balancer().weights();
    const std::vector<double> cpu_weights(cw.begin(), cw.end()), gpu_weights(gw.begin(), gw.end());
    EXPECT_TRUE(all_close(gpu_weights, cpu_weights, 1e-4, 1e-7))
        << name << ": the last step's weights";
    const auto cs = cpu.fan_out().balancer().state(), gs = gpu.fan_out().balancer().state();
    ASSERT_EQ(gs.size(), cs.size()) << name;
    for (size_t k = 0; k < cs.size(); ++k)
      EXPECT_TRUE(
          all_close(gs[k].second.to_vector<double>(), cs[k].second.to_vector<double>(), 1e-4, 1e-7))
          << name << ": state " << cs[k].first;
  }
}

// Graphed epochs against plain ones, two epochs so that a per-epoch update (dwa, dynamic,
// static-from-norms) and the state's trip to the host and back happen between them.
TEST(CudaBalancers, EveryStrategyReplaysInsideTheGraphWithThePlainBits) {
  POLYTASK_REQUIRE_GPU();
  const Dataset data = two_input_data(5 * kBatch, 4);
  for (const std::string& name : balancer_names()) {
    std::vector<float> plain_params, graphed_params;
    const auto plain = fit_on(Device::CUDA, data, 2, 0.0, false, &plain_params, {}, name);
    const auto graphed = fit_on(Device::CUDA, data, 2, 0.0, true, &graphed_params, {}, name);
    EXPECT_EQ(graphed[1].graphed_steps, 5) << name << ": every step of epoch 2 replays";
    EXPECT_EQ(graphed_params, plain_params) << name;
    for (size_t e = 0; e < 2; ++e)
      EXPECT_EQ(graphed[e].balance.weights, plain[e].balance.weights)
          << name << ", epoch " << e + 1;
  }
}

// The device-to-host reads of an epoch (its sums, the statistics, the balancer's state once) do
// not grow with its steps, for any strategy, with graphs and without.
TEST(CudaBalancers, NoStrategyReadsBackPerStep) {
  POLYTASK_REQUIRE_GPU();
  for (const char* name : {"uncertainty", "mgda", "famo", "nash-mtl", "dwa"})
    for (bool graphs : {false, true}) {
      std::vector<int64_t> reads;
      for (int64_t rows : {3 * kBatch, 7 * kBatch}) {
        const Dataset data = two_input_data(rows, 2);
        const int64_t before = device_to_host_copies();
        fit_on(Device::CUDA, data, 1, 0.0, graphs, nullptr, {}, name);
        reads.push_back(device_to_host_copies() - before);
      }
      EXPECT_EQ(reads[0], reads[1]) << name << (graphs ? " with" : " without") << " graphs";
    }
}

}  // namespace
}  // namespace polytask
