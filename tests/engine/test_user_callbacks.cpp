// The user callbacks docs/watching.md shows, compiled and run: a custom logger (the digit +
// colour notebook's Logger) and the Fashion-MNIST tutorial's TaskWeightScheduler written against
// the library, which moves loss weight to the task that lags as the `dynamic` balancer does.
#include <gtest/gtest.h>

#include <sstream>

#include "engine/callback.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

// --- docs/watching.md: a custom logger --------------------------------------------------------
class Logger : public Callback {
 public:
  explicit Logger(std::ostream& out) : out_(out) {}
  std::string name() const override { return "logger"; }
  int64_t steps_interval() const override { return 2; }  // on_steps every 2nd step
  void on_steps(int64_t step, const Logs& logs, TrainingContext&) override {
    out_ << "step " << step << " loss " << logs.at("loss") << "\n";
  }
  void on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext&) override {
    out_ << "epoch " << log.epoch << " val_loss " << logs.at("val_loss") << "\n";
  }

 private:
  std::ostream& out_;
};

// --- docs/watching.md: TaskWeightScheduler as a user callback ----------------------------------
// After each epoch, the task whose validation loss kept the largest share of its first-epoch
// value gains `step` of weight and the one with the smallest share gives it up, within
// [0.1, 2.0]. Loss weights change through the fan-out (static balancer); the next step uses them.
class TaskWeightScheduler : public Callback {
 public:
  explicit TaskWeightScheduler(double step = 0.1) : step_(step) {}
  std::string name() const override { return "task_weight_scheduler"; }
  void on_epoch_end(const EpochLog&, const Logs& logs, TrainingContext& context) override {
    FanOut& fan_out = context.network.fan_out();
    std::vector<double> share;
    for (size_t t = 0; t < fan_out.task_count(); ++t) {
      const double loss = logs.at("val_" + fan_out.task_name(t) + "_loss");
      if (first_.size() <= t) first_.push_back(loss);
      share.push_back(loss / first_[t]);
    }
    const auto [low, high] = std::minmax_element(share.begin(), share.end());
    if (*low == *high) return;
    const size_t lagging = size_t(high - share.begin()), leading = size_t(low - share.begin());
    fan_out.set_weight(lagging, std::min(fan_out.weight(lagging) + step_, 2.0));
    fan_out.set_weight(leading, std::max(fan_out.weight(leading) - step_, 0.1));
  }

 private:
  double step_;
  std::vector<double> first_;
};
// --- end of the docs' code --------------------------------------------------------------------

TEST(UserCallbacks, TheDocsLoggerAndTaskWeightSchedulerRun) {
  NetworkOptions o;
  o.max_batch = 8;
  o.seed = 3;
  Network net(testing::two_head_model(), testing::two_head_tasks(1.0, 0.5), o);
  Adam adam;
  Trainer trainer(net, adam);
  std::ostringstream out;
  FitOptions fit;
  fit.epochs = 3;
  fit.batch_size = 8;
  fit.validation_split = 0.25;  // 24 training rows: 3 steps per epoch
  fit.callbacks = {std::make_shared<Logger>(out), std::make_shared<TaskWeightScheduler>(0.1)};
  const auto logs = trainer.fit(testing::two_head_dataset(32), fit);
  EXPECT_NE(out.str().find("step 2 loss "), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("step 8 loss "), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("epoch 3 val_loss "), std::string::npos) << out.str();
  // Epoch 1 sets the reference shares (both 1: nothing moves); epoch 2 moves 0.1 from one task
  // to the other, which epoch 3 trains with.
  EXPECT_EQ(logs[1].balance.weights, (std::vector<double>{1.0, 0.5}));
  EXPECT_NEAR(std::abs(logs[2].balance.weights[0] - 1.0), 0.1, 1e-12);
  EXPECT_NEAR(logs[2].balance.weights[0] + logs[2].balance.weights[1], 1.5, 1e-12);
}

}  // namespace
}  // namespace polytask
