// Balancers inside a real network: every strategy trains the reference two-head model with
// finite, positive weights; static weights reproduce the pre-balancer combine bit for bit;
// MGDA's and PCGrad's trunk gradients are the combinations of per-task trunk gradients they
// claim to be; a checkpoint resumes the balancer exactly; the trainer logs and adapts per epoch.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "engine/balancer.h"
#include "engine/checkpoint.h"
#include "engine/dispatch.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "kernels/elementwise.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::error_message;
using testing::f64_options;
using testing::fill_batch;
using testing::flat_grads;
using testing::flat_params;

constexpr int64_t kBatch = 6;

BalancerOptions named(const std::string& name, double lr = 0.01) {
  BalancerOptions o;
  o.name = name;
  o.lr = lr;
  o.seed = 11;
  return o;
}

NetworkOptions options(DType dtype, uint64_t seed = 3) {
  NetworkOptions o = f64_options(kBatch, seed);
  o.dtype = dtype;
  return o;
}

// One step on batch `batch` (inputs and targets drawn from it); returns the task losses.
std::vector<double> step(Network& net, Optimizer& opt, uint64_t batch) {
  fill_batch(net, 500 + batch);
  net.forward(kBatch, true);
  std::vector<double> losses = {net.task_loss(0), net.task_loss(1)};
  net.backward();
  opt.step(net.parameters());
  return losses;
}

TEST(BalancersTraining, EveryStrategyTrainsTheTwoHeadModelWithFinitePositiveWeights) {
  for (const auto& name : balancer_names()) {
    Network net(testing::two_head_model(), testing::two_head_tasks(1.0, 0.5), options(DType::F32));
    net.fan_out().set_balancer(make_balancer(named(name)));
    kernels::AdamParams p;
    p.lr = 0.01f;
    Adam adam(p);
    double first = 0, last = 0;
    for (uint64_t s = 0; s < 40; ++s) {
      const auto losses = step(net, adam, s % 4);  // four batches, seen ten times each
      ASSERT_TRUE(std::isfinite(losses[0]) && std::isfinite(losses[1])) << name << " step " << s;
      if (s < 4) first += losses[0] + losses[1];
      if (s >= 36) last += losses[0] + losses[1];
      for (size_t t = 0; t < 2; ++t) {
        ASSERT_TRUE(std::isfinite(net.fan_out().weight(t))) << name;
        if (name == "mgda")
          ASSERT_GE(net.fan_out().weight(t), 0.0) << name;
        else
          ASSERT_GT(net.fan_out().weight(t), 0.0) << name;
      }
      if (s % 8 == 7) net.fan_out().end_epoch({int(s / 8) + 1, losses, {}});
    }
    EXPECT_LT(last, first) << name << ": the task losses did not fall";
    const BalanceDiagnostics d = net.fan_out().take_diagnostics();
    EXPECT_EQ(d.steps, 40) << name;
    for (double n : d.grad_norm) EXPECT_GT(n, 0.0) << name;
    EXPECT_TRUE(std::abs(d.cos(0, 1)) <= 1.0) << name;
  }
}

// The fan-out's combine as it was before balancers existed, verbatim.
class LegacySum final : public Balancer {
 public:
  std::string name() const override { return "legacy"; }
  void loss_seeds(uint64_t, std::span<const double>, std::span<double> seeds) override {
    std::copy(weights_.begin(), weights_.end(), seeds.begin());
  }
  void combine(const TaskGradients& g, const Tensor& dz) override {
    if (!dz.defined()) return;
    ASSERT_EQ(dz.device(), Device::CPU) << "this reference combine runs on the CPU";
    const auto legacy_sum = [&]<class T>() {
      for (size_t t = 0; t < g.grads.size(); ++t)
        kernels::cpu::scale_grad<T>(
            dz.numel(), T(1), g.grads[t].data<T>(), dz.data<T>(),
            t == 0 ? kernels::GradMode::Overwrite : kernels::GradMode::Accumulate);
    };
    if (dz.dtype() == DType::F64) legacy_sum.template operator()<double>();
    else legacy_sum.template operator()<float>();
  }
};

TEST(BalancersTraining, StaticWeightsReproduceThePlainWeightedSumBitForBit) {
  Network by_default(testing::two_head_model(), testing::two_head_tasks(1.0, 0.37),
                     options(DType::F32));
  Network legacy(testing::two_head_model(), testing::two_head_tasks(1.0, 0.37),
                 options(DType::F32));
  legacy.fan_out().set_balancer(std::make_unique<LegacySum>());
  EXPECT_EQ(by_default.fan_out().balancer().name(), "static");
  Adam a, b;
  for (uint64_t s = 0; s < 5; ++s) {
    EXPECT_EQ(step(by_default, a, s), step(legacy, b, s));
    EXPECT_EQ(flat_grads(by_default), flat_grads(legacy)) << "step " << s;
  }
  EXPECT_EQ(flat_params(by_default), flat_params(legacy));
  EXPECT_EQ(by_default.total_loss(), legacy.total_loss());
}

// The trunk's share of the flat gradient (every parameter outside the two heads).
std::vector<double> trunk_grads(const Network& net) {
  std::vector<double> out;
  for (const Parameter* p : net.parameters().all) {
    if (!p->trainable || p->name.rfind("digit_logits", 0) == 0 || p->name.rfind("size_out", 0) == 0)
      continue;
    const auto v = p->grad.to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// Trunk gradients of the same batch from each task alone (static weights e_t) and <g1, g2>,
// ‖g1‖², ‖g2‖² of the raw task gradients at z.
struct PerTask {
  std::vector<double> trunk[2];
  double g12 = 0, g11 = 0, g22 = 0;
};
PerTask per_task(uint64_t batch) {
  PerTask out;
  Network net(testing::two_head_model(), testing::two_head_tasks(1.0, 1.0), options(DType::F64));
  fill_batch(net, batch);
  std::vector<double> g[2];
  for (size_t t = 0; t < 2; ++t) {
    net.fan_out().set_weight(size_t(0), t == 0 ? 1.0 : 0.0);
    net.fan_out().set_weight(size_t(1), t == 1 ? 1.0 : 0.0);
    testing::train_pass(net, kBatch);
    out.trunk[t] = trunk_grads(net);
    g[t] = net.fan_out().task_gradient(t).to_vector<double>();
  }
  for (size_t i = 0; i < g[0].size(); ++i) {
    out.g12 += g[0][i] * g[1][i];
    out.g11 += g[0][i] * g[0][i];
    out.g22 += g[1][i] * g[1][i];
  }
  return out;
}

TEST(BalancersTraining, MgdaTrunkGradientIsTheMinNormCombinationOfTheTaskGradients) {
  for (uint64_t batch : {1, 2, 3}) {
    const PerTask ref = per_task(batch);
    Network net(testing::two_head_model(), testing::two_head_tasks(1.0, 0.5), options(DType::F64));
    net.fan_out().set_balancer(make_balancer(named("mgda")));
    fill_batch(net, batch);
    testing::train_pass(net, kBatch);
    // The closed form for two tasks.
    const double a1 = std::clamp((ref.g22 - ref.g12) / (ref.g11 + ref.g22 - 2 * ref.g12), 0.0, 1.0);
    EXPECT_NEAR(net.fan_out().weight(0), a1, 1e-12);
    EXPECT_NEAR(net.fan_out().weight(1), 1 - a1, 1e-12);
    std::vector<double> expected(ref.trunk[0].size());
    for (size_t i = 0; i < expected.size(); ++i)
      expected[i] = a1 * ref.trunk[0][i] + (1 - a1) * ref.trunk[1][i];
    EXPECT_TRUE(testing::all_close(trunk_grads(net), expected, 1e-10, 1e-14)) << "batch " << batch;
  }
}

TEST(BalancersTraining, PcGradTrunkGradientIsTheSumOfTheProjectedTaskGradients) {
  int conflicts = 0;
  for (uint64_t batch = 1; batch <= 6; ++batch) {
    const PerTask ref = per_task(batch);
    Network net(testing::two_head_model(), testing::two_head_tasks(1.0, 1.0), options(DType::F64));
    net.fan_out().set_balancer(make_balancer(named("pcgrad")));
    fill_batch(net, batch);
    testing::train_pass(net, kBatch);
    // pc1 + pc2 = (1 - c2)·g1 + (1 - c1)·g2, c1 = min(<g1,g2>, 0)/‖g2‖², c2 = min(<g1,g2>,
    // 0)/‖g1‖².
    const double conflict = std::min(ref.g12, 0.0);
    conflicts += conflict < 0;
    const double k1 = 1 - conflict / ref.g11, k2 = 1 - conflict / ref.g22;
    std::vector<double> expected(ref.trunk[0].size());
    for (size_t i = 0; i < expected.size(); ++i)
      expected[i] = k1 * ref.trunk[0][i] + k2 * ref.trunk[1][i];
    EXPECT_TRUE(testing::all_close(trunk_grads(net), expected, 1e-10, 1e-14)) << "batch " << batch;
  }
  EXPECT_GT(conflicts, 0)
      << "no batch had conflicting gradients: the test proves less than it claims";
}

TEST(BalancersTraining, StrategiesRunWhenTheSharedRepresentationIsAModelInput) {
  ModelBuilder b;
  Value z = b.input("z", {6});
  Value a = layers::dense(3, layers::Activation::None, "a_out")(z);
  Value c = layers::dense(1, layers::Activation::None, "c_out")(z);
  for (const auto& name : balancer_names()) {
    Network net(b.build({{"a", a}, {"c", c}}),
                {[] {
                   Task t;
                   t.name = "a";
                   return t;
                 }(),
                 [] {
                   Task t;
                   t.name = "c";
                   t.loss = LossKind::MeanSquaredError;
                   return t;
                 }()},
                f64_options(4, 2));
    net.fan_out().set_balancer(make_balancer(named(name)));
    fill_batch(net, 9);
    Adam adam;
    for (int s = 0; s < 3; ++s) {
      net.forward(4, true);
      net.backward();  // dz is undefined: only the heads and the balancer's own state update
      adam.step(net.parameters());
    }
    EXPECT_EQ(net.fan_out().take_diagnostics().steps, 3) << name;
  }
}

// ---- checkpoints -----------------------------------------------------------------------------

class BalancerCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("polytask-balancer-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

struct BalancedRun {
  explicit BalancedRun(const std::string& balancer) {
    net = std::make_unique<Network>(testing::two_head_model(), testing::two_head_tasks(1.0, 0.5),
                                    options(DType::F32));
    net->fan_out().set_balancer(make_balancer(named(balancer, 0.05)));
  }
  // Steps [from, to) with an epoch end every 4 steps; returns the weights after each step.
  std::vector<double> train(uint64_t from, uint64_t to) {
    std::vector<double> trace;
    for (uint64_t s = from; s < to; ++s) {
      const auto losses = step(*net, adam, s);
      if (s % 4 == 3) net->fan_out().end_epoch({int(s / 4) + 1, losses, {losses[1], losses[0]}});
      trace.push_back(net->fan_out().weight(0));
      trace.push_back(net->fan_out().weight(1));
    }
    return trace;
  }
  std::unique_ptr<Network> net;
  Adam adam;
};

TEST_F(BalancerCheckpoint, ResumeContinuesEveryStrategyExactly) {
  for (const auto& name : balancer_names()) {
    BalancedRun original(name);
    original.train(0, 8);
    save_checkpoint(dir_, *original.net, &original.adam, {2, 0, {}});
    const auto expected = original.train(8, 16);
    BalancedRun resumed(name);
    resumed.train(0, 3);  // a different state, overwritten by the checkpoint
    const TrainingState st = load_training_state(dir_, *resumed.net, resumed.adam);
    EXPECT_EQ(st.balancer, name);
    EXPECT_EQ(resumed.train(8, 16), expected) << name;
    EXPECT_EQ(flat_params(*resumed.net), flat_params(*original.net)) << name;
  }
}

TEST_F(BalancerCheckpoint, ACheckpointOfAnotherBalancerIsRefusedAndNothingChanges) {
  BalancedRun original("uncertainty");
  original.train(0, 4);
  save_checkpoint(dir_, *original.net, &original.adam, {1, 0, {}});
  EXPECT_EQ(read_training_state(dir_).balancer, "uncertainty");
  BalancedRun other("gradnorm");
  const auto before = flat_params(*other.net);
  const std::string message =
      error_message([&] { load_training_state(dir_, *other.net, other.adam); });
  EXPECT_TRUE(contains(message, "trained with balancer uncertainty"));
  EXPECT_TRUE(contains(message, "gradnorm"));
  EXPECT_EQ(flat_params(*other.net), before);
  EXPECT_EQ(other.net->step(), 0u);
}

// ---- the trainer -----------------------------------------------------------------------------

TEST(BalancersTraining, TrainerLogsTheBalanceEveryEpochAndLetsTheScheduleAdvance) {
  Network net(testing::two_head_model(), testing::two_head_tasks(1.0, 0.5), options(DType::F32));
  BalancerOptions o = named("dynamic");
  o.schedule["size"] = {1.0, 0.8, 0.5};
  net.fan_out().set_balancer(make_balancer(o));
  Adam adam;
  Trainer trainer(net, adam);
  FitOptions fit;
  fit.epochs = 4;
  fit.batch_size = kBatch;
  fit.validation_split = 0.25;
  std::ostringstream log;
  fit.log = &log;
  const auto logs = trainer.fit(testing::two_head_dataset(24), fit);
  ASSERT_EQ(logs.size(), 4u);
  const double expected[] = {1.0, 0.8, 0.5, 0.5};
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_EQ(logs[e].balance.steps, 3);  // 18 training rows in batches of 6
    EXPECT_EQ(logs[e].balance.weights[0], 1.0);
    EXPECT_DOUBLE_EQ(logs[e].balance.weights[1], expected[e]) << "epoch " << e + 1;  // a mean of 3
    // The reported loss uses the configured weights (1, 0.5) whatever the schedule.
    EXPECT_DOUBLE_EQ(logs[e].train_loss, logs[e].train[0].loss() + 0.5 * logs[e].train[1].loss());
  }
  const std::string text = log.str();
  EXPECT_TRUE(contains(text, "  weights: digit 1.000 size 0.800 | grad norm: digit "));
  EXPECT_TRUE(contains(text, " | cos(digit,size) "));
  EXPECT_TRUE(contains(text, "% of steps < 0)\n"));
}

}  // namespace
}  // namespace polytask
