// The per-step arithmetic of each balancing strategy (kernels/balance.h: seeds, then combine on
// the T×T Gram matrix) on the host, per call, for T = 2, 3 and 8 tasks on random Gram matrices
// of T gradients in 64 dimensions. This is the whole of a strategy's cost beyond static apart
// from the Gram matrix (T(T+1)/2 inner products over batch·|z| numbers, which every strategy's
// diagnostics compute anyway) and one weighted sum. On the GPU the same code runs in one thread
// (kernels/cuda/balance.cu), where a call is slower than here: never measured (no GPU yet).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "engine/balancer.h"
#include "engine/balancers/program.h"
#include "kernels/balance.h"

namespace {

namespace kb = polytask::kernels::balance;

// The strategy's Settings as its factory makes them (options at their defaults).
kb::Settings settings_of(const std::string& name, int tasks) {
  polytask::BalancerOptions o;
  o.name = name;
  auto balancer = polytask::make_balancer(o);
  std::vector<std::string> names;
  for (int t = 0; t < tasks; ++t) names.push_back(std::to_string(t));
  balancer->bind({names, std::vector<double>(size_t(tasks), 1.0), polytask::Shape{1, 64},
                  polytask::DType::F32, polytask::Device::CPU});
  if (const auto* program = dynamic_cast<polytask::balancing::ProgramBalancer*>(balancer.get()))
    return program->settings();
  kb::Settings plain;  // static: the host's step, the same as kernels/balance/static_weights.h
  plain.tasks = tasks;
  return plain;
}

void BM_BalanceStep(benchmark::State& state, const std::string& name) {
  const int tasks = int(state.range(0));
  const kb::Settings settings = settings_of(name, tasks);
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal;
  // A batch of Gram matrices with some conflict (a shared direction plus noise).
  constexpr int kMatrices = 64;
  std::vector<double> grams(size_t(kMatrices * tasks * tasks));
  for (int m = 0; m < kMatrices; ++m) {
    std::vector<double> g(size_t(tasks * 64));
    for (double& x : g) x = normal(rng);
    for (int i = 0; i < tasks; ++i)
      for (int j = 0; j < tasks; ++j) {
        double dot = 0;
        for (int k = 0; k < 64; ++k) dot += g[size_t(i * 64 + k)] * g[size_t(j * 64 + k)];
        grams[size_t((m * tasks + i) * tasks + j)] = dot;
      }
  }
  std::vector<double> losses(size_t(tasks), 0.7);
  std::vector<double> seeds(size_t(tasks), 0.0), c(size_t(tasks), 0.0);
  kb::State st{};
  for (int t = 0; t < tasks; ++t) st.base[t] = 1;
  uint64_t step = 0;
  for (auto _ : state) {
    const double* gram = grams.data() + size_t((step % kMatrices) * uint64_t(tasks * tasks));
    kb::seeds(settings, st, losses.data(), step, seeds.data());
    kb::combine(settings, st, gram, losses.data(), seeds.data(), step, c.data());
    benchmark::DoNotOptimize(c.data());
    ++step;
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (const std::string& name : polytask::balancer_names())
    benchmark::RegisterBenchmark(("balance_step/" + name).c_str(), BM_BalanceStep, name)
        ->Arg(2)
        ->Arg(3)
        ->Arg(8);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
