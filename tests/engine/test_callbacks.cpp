// Callbacks: each built-in's decisions against hand-worked sequences of epoch logs (Keras'
// semantics), their state surviving a resume so a resumed run decides as an uninterrupted one,
// and the trainer's seam: event order, steps intervals, stopping, learning-rate changes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "engine/callback.h"
#include "engine/callbacks/csv_logger.h"
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/learning_rate_scheduler.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/reduce_lr_on_plateau.h"
#include "engine/callbacks/terminate_on_nan.h"
#include "engine/checkpoint.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "tests/engine/engine_fixtures.h"
#include "tests/support/file_bytes.h"

namespace polytask {
namespace {

namespace fs = std::filesystem;
using namespace callbacks;
using testing::contains;
using testing::error_message;

NetworkOptions small_options() {
  NetworkOptions o;
  o.max_batch = 8;
  o.seed = 3;
  return o;
}

// A network and an optimiser to hand callbacks, and a driver that feeds them epoch logs.
struct Harness {
  Harness() : net(testing::two_head_model(), testing::two_head_tasks(), small_options()) {
    context = std::make_unique<TrainingContext>(TrainingContext{net, adam});
    context->epochs = 100;
    context->has_validation = true;
  }
  void begin(Callback& cb, int initial_epoch = 0) {
    context->initial_epoch = initial_epoch;
    context->stop_training = false;
    cb.on_train_begin(*context);
  }
  // Epoch `epoch` ends with `key` = value; returns whether training was stopped.
  bool epoch(Callback& cb, int epoch, const std::string& key, double value) {
    cb.on_epoch_begin(epoch, *context);
    EpochLog log;
    log.epoch = epoch;
    Logs logs = {{"loss", 1.0}, {"val_loss", 1.0}, {"val_digit_accuracy", 0.5}};
    logs[key] = value;
    cb.on_epoch_end(log, logs, *context);
    return context->stop_training;
  }
  double lr() const { return adam.learning_rate(); }

  Network net;
  Adam adam;
  std::unique_ptr<TrainingContext> context;
};

// ---- EarlyStopping ---------------------------------------------------------------------------

TEST(EarlyStopping, StopsAfterPatienceEpochsWithoutImprovement) {
  Harness h;
  EarlyStopping es({.monitor = "val_loss", .patience = 2});
  h.begin(es);
  EXPECT_FALSE(h.epoch(es, 1, "val_loss", 1.0));   // best 1.0
  EXPECT_FALSE(h.epoch(es, 2, "val_loss", 0.8));   // best 0.8 (epoch 2)
  EXPECT_FALSE(h.epoch(es, 3, "val_loss", 0.85));  // wait 1
  EXPECT_TRUE(h.epoch(es, 4, "val_loss", 0.9));    // wait 2 = patience: stop
  EXPECT_EQ(es.stopped_epoch(), 4);
  EXPECT_EQ(es.best_epoch(), 2);
  EXPECT_EQ(es.best(), 0.8);
}

TEST(EarlyStopping, MinDeltaAndMaxMode) {
  Harness h;
  // Accuracy improves upwards (auto mode); a gain of 0.01 does not beat min_delta 0.02.
  EarlyStopping es({.monitor = "val_digit_accuracy", .patience = 1, .min_delta = 0.02});
  h.begin(es);
  EXPECT_FALSE(h.epoch(es, 1, "val_digit_accuracy", 0.50));
  EXPECT_FALSE(h.epoch(es, 2, "val_digit_accuracy", 0.60));  // +0.10: improves
  EXPECT_TRUE(h.epoch(es, 3, "val_digit_accuracy", 0.61));   // +0.01: does not
  EXPECT_EQ(es.best(), 0.60);
  // A patience of 0 still never stops after the run's first epoch (Keras).
  Harness h2;
  EarlyStopping zero({.monitor = "val_loss", .mode = "max", .patience = 0});
  h2.begin(zero);
  EXPECT_FALSE(h2.epoch(zero, 1, "val_loss", std::nan("")));
  EXPECT_TRUE(h2.epoch(zero, 2, "val_loss", std::nan("")));  // NaN never improves
}

TEST(EarlyStopping, BaselineMustBeBeatenFirst) {
  Harness h;
  EarlyStopping es({.monitor = "val_loss", .patience = 2, .baseline = 0.5});
  h.begin(es);
  EXPECT_FALSE(h.epoch(es, 1, "val_loss", 0.9));  // improves on inf but not on the baseline
  EXPECT_TRUE(h.epoch(es, 2, "val_loss", 0.8));   // wait 2
}

TEST(EarlyStopping, RestoresTheBestEpochsWeights) {
  Harness h;
  EarlyStopping es({.monitor = "val_loss", .patience = 1, .restore_best_weights = true});
  h.begin(es);
  testing::fill_uniform(h.net.parameters().values, 1);
  h.epoch(es, 1, "val_loss", 0.5);
  const auto best = testing::flat_params(h.net);
  testing::fill_uniform(h.net.parameters().values, 2);
  ASSERT_NE(testing::flat_params(h.net), best);
  EXPECT_TRUE(h.epoch(es, 2, "val_loss", 0.7));
  EXPECT_EQ(testing::flat_params(h.net), best);
}

TEST(EarlyStopping, ResumedRestoreNeedsASavedCopyOfTheBest) {
  Harness h;
  EarlyStopping first({.monitor = "val_loss", .patience = 3, .restore_best_weights = true});
  h.begin(first);
  h.epoch(first, 1, "val_loss", 0.5);
  EarlyStopping resumed({.monitor = "val_loss", .patience = 3, .restore_best_weights = true});
  resumed.load_state(first.state());
  EXPECT_TRUE(contains(error_message([&] { h.begin(resumed, 1); }), "needs the best epoch's"));
  int loads = 0;
  EarlyStopping with_copy({.monitor = "val_loss",
                           .patience = 1,
                           .restore_best_weights = true,
                           .load_saved_best = [&](Network&) { ++loads; }});
  with_copy.load_state(first.state());
  h.begin(with_copy, 1);
  EXPECT_TRUE(h.epoch(with_copy, 2, "val_loss", 0.6));  // as the uninterrupted run would
  EXPECT_EQ(loads, 1);
}

TEST(EarlyStopping, AStoppedRunStaysStoppedWhenResumed) {
  Harness h;
  EarlyStopping es({.monitor = "val_loss", .patience = 1});
  h.begin(es);
  h.epoch(es, 1, "val_loss", 0.5);
  ASSERT_TRUE(h.epoch(es, 2, "val_loss", 0.6));
  EarlyStopping resumed({.monitor = "val_loss", .patience = 1});
  resumed.load_state(es.state());
  h.begin(resumed, 2);
  EXPECT_TRUE(h.context->stop_training);
}

TEST(Monitors, UnknownOrImpossibleMonitorsAreRefusedListingTheValidOnes) {
  Harness h;
  EarlyStopping es({.monitor = "val_acc"});
  const std::string message = error_message([&] { h.begin(es); });
  EXPECT_TRUE(contains(message, "EarlyStopping: unknown monitor 'val_acc'"));
  EXPECT_TRUE(contains(message, "val_digit_accuracy"));
  EXPECT_TRUE(contains(message, "size_mae"));
  h.context->has_validation = false;
  ReduceLROnPlateau plateau({.monitor = "val_loss"});
  EXPECT_TRUE(contains(error_message([&] { h.begin(plateau); }), "no validation data"));
  EXPECT_TRUE(contains(error_message([] { EarlyStopping bad({.mode = "up"}); }),
                       "mode must be auto, min or max"));
}

// ---- ReduceLROnPlateau -----------------------------------------------------------------------

TEST(ReduceLROnPlateau, HandWorkedSequenceWithCooldownAndFloor) {
  Harness h;
  h.adam.set_learning_rate(0.1);
  ReduceLROnPlateau r({.monitor = "val_loss",
                       .factor = 0.5,
                       .patience = 2,
                       .min_delta = 0.01,
                       .cooldown = 1,
                       .min_lr = 0.03});
  h.begin(r);
  // epoch: value -> the rate after the epoch (the optimiser keeps it as a float)
  const std::vector<std::pair<double, double>> steps = {
      {1.00, 0.1},    // best 1.00
      {0.995, 0.1},   // not better by more than min_delta: wait 1
      {0.995, 0.05},  // wait 2 = patience: 0.1 -> 0.05, cooldown 1, wait 0
      {0.995, 0.05},  // cooldown runs out this epoch and, as in Keras, the epoch counts: wait 1
      {0.995, 0.03},  // wait 2: 0.05 * 0.5 = 0.025, floored at min_lr 0.03
      {0.90, 0.03},   // improves: best 0.90, wait 0
      {0.90, 0.03},   // wait 1
      {0.90, 0.03},   // wait 2, but the rate is at min_lr already
      {0.90, 0.03},   // wait 3: still at the floor
  };
  for (size_t e = 0; e < steps.size(); ++e) {
    h.epoch(r, int(e) + 1, "val_loss", steps[e].first);
    EXPECT_FLOAT_EQ(float(h.lr()), float(steps[e].second)) << "after epoch " << e + 1;
  }
}

TEST(ReduceLROnPlateau, ResumedStateDecidesAsTheUninterruptedRun) {
  const std::vector<double> values = {1.0, 0.9, 0.95, 0.97, 0.96, 0.99, 0.8, 0.85, 0.9, 0.95};
  const ReduceLROnPlateauOptions o = {
      .monitor = "val_loss", .factor = 0.5, .patience = 2, .cooldown = 1};
  Harness whole;
  ReduceLROnPlateau r(o);
  whole.begin(r);
  std::vector<double> expected;
  for (size_t e = 0; e < values.size(); ++e) {
    whole.epoch(r, int(e) + 1, "val_loss", values[e]);
    expected.push_back(whole.lr());
  }
  for (int cut = 1; cut < int(values.size()); ++cut) {
    Harness a;
    ReduceLROnPlateau first(o);
    a.begin(first);
    for (int e = 0; e < cut; ++e) a.epoch(first, e + 1, "val_loss", values[size_t(e)]);
    Harness b;  // a new process: the rate comes from the checkpoint, the rest from the state
    b.adam.set_learning_rate(a.lr());
    ReduceLROnPlateau resumed(o);
    resumed.load_state(first.state());
    b.begin(resumed, cut);
    for (int e = cut; e < int(values.size()); ++e) {
      b.epoch(resumed, e + 1, "val_loss", values[size_t(e)]);
      EXPECT_EQ(b.lr(), expected[size_t(e)]) << "cut after " << cut << ", epoch " << e + 1;
    }
  }
}

// ---- learning-rate schedules -----------------------------------------------------------------

TEST(LrSchedule, RatesOfTheBuiltInSchedules) {
  const LrSchedule cosine = LrSchedule::parse("cosine", 0.1, 2);
  // 10 epochs: warm-up 0.05, 0.1; then half a cosine over the 8 epochs after it.
  EXPECT_DOUBLE_EQ(cosine.rate(0, 10), 0.05);
  EXPECT_DOUBLE_EQ(cosine.rate(1, 10), 0.1);
  EXPECT_DOUBLE_EQ(cosine.rate(2, 10), 0.1);
  EXPECT_NEAR(cosine.rate(6, 10), 0.05, 1e-15);  // halfway
  EXPECT_NEAR(cosine.rate(9, 10), 0.05 * (1 + std::cos(M_PI * 7 / 8)), 1e-15);
  const LrSchedule step = LrSchedule::parse("step:3:0.5", 0.1, 0);
  EXPECT_DOUBLE_EQ(step.rate(2, 10), 0.1);
  EXPECT_DOUBLE_EQ(step.rate(3, 10), 0.05);
  EXPECT_DOUBLE_EQ(step.rate(7, 10), 0.025);
  const LrSchedule exp = LrSchedule::parse("exponential:0.9", 0.1, 1);
  EXPECT_DOUBLE_EQ(exp.rate(0, 10), 0.1);  // one warm-up epoch is the full rate
  EXPECT_DOUBLE_EQ(exp.rate(3, 10), 0.1 * 0.81);
  EXPECT_DOUBLE_EQ(LrSchedule::parse("constant", 0.2, 4).rate(1, 10), 0.1);
  for (const char* bad : {"cosine:2", "step:0:0.5", "step:2", "exponential:-1", "linear", ""})
    EXPECT_TRUE(contains(error_message([&] { LrSchedule::parse(bad, 0.1, 0); }), "schedule"))
        << bad;
}

TEST(LearningRateScheduler, SetsEachEpochsRateFromAUserFunction) {
  Harness h;
  LearningRateScheduler s([](int epoch, double lr) { return epoch < 2 ? lr : lr * 0.5; });
  h.adam.set_learning_rate(0.08);
  std::vector<double> rates;
  for (int e = 1; e <= 4; ++e) {
    s.on_epoch_begin(e, *h.context);
    rates.push_back(h.lr());
  }
  const std::vector<double> expected = {0.08, 0.08, 0.04, 0.02};
  for (size_t e = 0; e < rates.size(); ++e) EXPECT_FLOAT_EQ(float(rates[e]), float(expected[e]));
  LearningRateScheduler bad([](int, double) { return -1.0; });
  EXPECT_TRUE(contains(error_message([&] { bad.on_epoch_begin(1, *h.context); }), "positive"));
}

// ---- files: ModelCheckpoint, CSVLogger -------------------------------------------------------

class CallbackFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            cat("polytask_callbacks_", ::getpid(), "_",
                ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CallbackFiles, ModelCheckpointSavesOnlyImprovements) {
  Harness h;
  ModelCheckpoint mc({.dir = dir_ + "/best", .monitor = "val_digit_accuracy"});
  h.begin(mc);
  h.epoch(mc, 1, "val_digit_accuracy", 0.6);
  const auto saved = testing::flat_params(h.net);
  EXPECT_EQ(read_training_state(dir_ + "/best").epoch, 1);
  testing::fill_uniform(h.net.parameters().values, 9);
  h.epoch(mc, 2, "val_digit_accuracy", 0.55);  // worse: not saved
  EXPECT_EQ(read_training_state(dir_ + "/best").epoch, 1);
  Network loaded(testing::two_head_model(), testing::two_head_tasks(), small_options());
  load_parameters(dir_ + "/best", loaded);
  EXPECT_EQ(testing::flat_params(loaded), saved);
  h.epoch(mc, 3, "val_digit_accuracy", 0.7);
  const TrainingState st = read_training_state(dir_ + "/best");
  EXPECT_EQ(st.epoch, 3);
  EXPECT_EQ(st.metadata.at("monitor"), "val_digit_accuracy");
  EXPECT_EQ(std::stod(st.metadata.at("monitor_value")), 0.7);
  EXPECT_EQ(mc.best_epoch(), 3);
}

TEST_F(CallbackFiles, CSVLoggerWritesSortedColumnsAndDropsRowsAfterTheCheckpointOnResume) {
  const std::string path = dir_ + "/metrics.csv";
  Harness h;
  CSVLogger csv(path);
  h.begin(csv);
  for (int e = 1; e <= 3; ++e) h.epoch(csv, e, "loss", 1.0 / e);
  EXPECT_EQ(
      testing::read_bytes(path),
      "epoch,loss,val_digit_accuracy,val_loss\n1,1,0.5,1\n2,0.5,0.5,1\n3,0.333333333,0.5,1\n");
  CSVLogger resumed(path);  // the checkpoint holds 2 epochs: row 3 goes
  h.begin(resumed, 2);
  h.epoch(resumed, 3, "loss", 0.25);
  EXPECT_EQ(testing::read_bytes(path),
            "epoch,loss,val_digit_accuracy,val_loss\n1,1,0.5,1\n2,0.5,0.5,1\n3,0.25,0.5,1\n");
  CSVLogger fresh(path);  // a new run starts the file again
  h.begin(fresh, 0);
  h.epoch(fresh, 1, "loss", 2.0);
  EXPECT_EQ(testing::read_bytes(path), "epoch,loss,val_digit_accuracy,val_loss\n1,2,0.5,1\n");
}

TEST(TerminateOnNaN, NamesTheLossAndTheEpoch) {
  Harness h;
  TerminateOnNaN t;
  EXPECT_FALSE(h.epoch(t, 1, "val_loss", 0.5));
  EXPECT_TRUE(contains(error_message([&] { h.epoch(t, 2, "val_loss", std::nan("")); }),
                       "TerminateOnNaN: val_loss became nan in epoch 2"));
}

// ---- the trainer's seam ----------------------------------------------------------------------

// Records every call, as a user's callback would see them.
struct Recorder : Callback {
  std::string name() const override { return "recorder"; }
  void on_train_begin(TrainingContext&) override { events.push_back("train_begin"); }
  void on_epoch_begin(int epoch, TrainingContext&) override {
    events.push_back(cat("epoch_begin ", epoch));
  }
  int64_t steps_interval() const override { return 3; }
  void on_steps(int64_t step, const Logs& logs, TrainingContext&) override {
    events.push_back(cat("steps ", step));
    EXPECT_TRUE(logs.count("loss") && logs.count("digit_loss") && logs.count("learning_rate"));
    EXPECT_TRUE(std::isfinite(logs.at("loss")));
  }
  void on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext&) override {
    events.push_back(cat("epoch_end ", log.epoch));
    EXPECT_TRUE(logs.count("val_size_mae"));
    EXPECT_EQ(logs.at("learning_rate"), log.learning_rate);
  }
  void on_train_end(TrainingContext&) override { events.push_back("train_end"); }
  std::vector<std::string> events;
};

TEST(TrainerCallbacks, EventsArriveInKerasOrderAndAStopEndsTheFit) {
  Network net(testing::two_head_model(), testing::two_head_tasks(), small_options());
  Adam adam;
  Trainer trainer(net, adam);
  auto recorder = std::make_shared<Recorder>();
  struct StopAfterTwo : Callback {
    std::string name() const override { return "stop"; }
    void on_epoch_end(const EpochLog& log, const Logs&, TrainingContext& c) override {
      if (log.epoch == 2) c.stop_training = true;
    }
  };
  FitOptions fit;
  fit.epochs = 5;
  fit.batch_size = 8;
  fit.validation_split = 0.2;  // 16 training rows: 2 steps per epoch
  fit.callbacks = {recorder, std::make_shared<StopAfterTwo>()};
  const auto logs = trainer.fit(testing::two_head_dataset(20), fit);
  EXPECT_EQ(logs.size(), 2u);
  EXPECT_EQ(recorder->events,
            (std::vector<std::string>{"train_begin", "epoch_begin 1", "epoch_end 1",
                                      "epoch_begin 2", "steps 3", "epoch_end 2", "train_end"}));
}

TEST(TrainerCallbacks, ScheduledRatesAreWhatTheEpochsTrainWith) {
  Network net(testing::two_head_model(), testing::two_head_tasks(), small_options());
  Adam adam;
  Trainer trainer(net, adam);
  FitOptions fit;
  fit.epochs = 4;
  fit.batch_size = 8;
  fit.callbacks = {
      std::make_shared<LearningRateScheduler>(LrSchedule::parse("step:2:0.1", 0.01, 1))};
  const auto logs = trainer.fit(testing::two_head_dataset(16), fit);
  ASSERT_EQ(logs.size(), 4u);
  EXPECT_FLOAT_EQ(float(logs[0].learning_rate), 0.01f);
  EXPECT_FLOAT_EQ(float(logs[1].learning_rate), 0.01f);
  EXPECT_FLOAT_EQ(float(logs[2].learning_rate), 0.01f);
  EXPECT_FLOAT_EQ(float(logs[3].learning_rate), 0.001f);
}

// A run cut after epoch 3 and resumed from its checkpoint and the callbacks' saved state makes
// the same decisions (rates, stop) and the same losses as the uninterrupted run.
TEST_F(CallbackFiles, AResumedFitDecidesExactlyAsTheUninterruptedOne) {
  const Dataset data = testing::two_head_dataset(24);
  const auto make_callbacks = [] {
    return Callbacks{std::make_shared<ReduceLROnPlateau>(ReduceLROnPlateauOptions{
                         .monitor = "loss", .factor = 0.5, .patience = 1, .min_delta = 0.5}),
                     std::make_shared<EarlyStopping>(EarlyStoppingOptions{
                         .monitor = "val_loss", .patience = 4, .min_delta = 0.5})};
  };
  const auto run = [&](int from, int to, const Callbacks& cbs, Network& net, Adam& adam) {
    Trainer trainer(net, adam);
    FitOptions fit;
    fit.epochs = to;
    fit.initial_epoch = from;
    fit.batch_size = 8;
    fit.validation_split = 0.25;
    fit.callbacks = cbs;
    return trainer.fit(data, fit, [&](const EpochLog& log) {
      TrainingState st;
      st.epoch = log.epoch;
      for (const auto& [k, v] : callbacks_state(cbs)) st.metadata["callbacks." + k] = v;
      if (log.epoch == 3) save_checkpoint(dir_, net, &adam, st);
    });
  };
  Network whole_net(testing::two_head_model(), testing::two_head_tasks(), small_options());
  Adam whole_adam;
  const auto whole = run(0, 9, make_callbacks(), whole_net, whole_adam);
  ASSERT_LT(whole.size(), 9u) << "the sequence should stop early";
  ASSERT_LT(whole.back().learning_rate, whole.front().learning_rate) << "and lower the rate";

  Network first_net(testing::two_head_model(), testing::two_head_tasks(), small_options());
  Adam first_adam;
  run(0, 3, make_callbacks(), first_net, first_adam);
  Network net(testing::two_head_model(), testing::two_head_tasks(), small_options());
  Adam adam;
  const TrainingState st = load_training_state(dir_, net, adam);
  std::map<std::string, std::string> saved;
  for (const auto& [k, v] : st.metadata)
    if (k.rfind("callbacks.", 0) == 0) saved[k.substr(10)] = v;
  const Callbacks cbs = make_callbacks();
  load_callbacks_state(cbs, saved);
  const auto rest = run(int(st.epoch), 9, cbs, net, adam);
  ASSERT_EQ(rest.size() + 3, whole.size());
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].learning_rate, whole[i + 3].learning_rate) << "epoch " << rest[i].epoch;
    EXPECT_EQ(rest[i].train_loss, whole[i + 3].train_loss) << "epoch " << rest[i].epoch;
  }
}

}  // namespace
}  // namespace polytask
