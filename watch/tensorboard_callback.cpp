#include "watch/tensorboard_callback.h"

#include <cmath>

#include "engine/network.h"
#include "engine/trainer.h"
#include "watch/prediction_grid.h"

namespace polytask::watch {

namespace {

constexpr const char* kBatchPrefix = "batch_";

bool is_batch_tag(const std::string& tag) { return tag.rfind(kBatchPrefix, 0) == 0; }

}  // namespace

TensorBoard::TensorBoard(TensorBoardOptions options) : options_(std::move(options)) {
  if (options_.log_dir.empty()) fail("TensorBoard: no log directory given");
  if (options_.log_every < 0) fail("TensorBoard: log_every must be >= 0, got ", options_.log_every);
}

TensorBoard::~TensorBoard() = default;

void TensorBoard::on_train_begin(TrainingContext& context) {
  if (context.initial_epoch > 0) {
    // Events written after the checkpoint we resume from belong to epochs this run redoes.
    const int64_t last_epoch = context.initial_epoch;
    const int64_t last_step = int64_t(context.network.step());
    try {
      prune_events(options_.log_dir, [&](const EventRecord& r) {
        for (const auto& tag : r.tags)
          if (is_batch_tag(tag) ? r.step > last_step : r.step > last_epoch) return false;
        return true;
      });
    } catch (const Error& e) {
      // A damaged events file must not stop the run from resuming; TensorBoard itself reads
      // such a file up to the damage.
      if (context.log)
        *context.log << "note: TensorBoard files left as they are (" << e.what()
                     << "); steps after the checkpoint may show twice\n";
    }
  }
  train_ = std::make_unique<EventWriter>(options_.log_dir + "/train");
  if (context.has_validation)
    validation_ = std::make_unique<EventWriter>(options_.log_dir + "/validation");
  if (context.initial_epoch == 0 && !options_.config_text.empty()) {
    // Markdown would reflow the TOML: a code block keeps it as written.
    train_->text("config", 0, "```\n" + options_.config_text + "\n```");
    train_->flush();
  }
}

void TensorBoard::on_steps(int64_t step, const Logs& logs, TrainingContext& context) {
  for (const auto& [key, value] : logs)
    if (key == "loss" || key.ends_with("_loss")) train_->scalar(kBatchPrefix + key, step, value);
  (void)context;
}

void TensorBoard::on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext& context) {
  const int64_t step = log.epoch;
  for (const auto& [key, value] : logs) {
    if (key.rfind("val_", 0) == 0) {
      if (validation_) validation_->scalar("epoch_" + key.substr(4), step, value);
    } else {
      train_->scalar("epoch_" + key, step, value);
    }
  }
  write_balance(log, context.network, step);
  if (options_.histograms)
    for (const Parameter* p : context.network.parameters().all) {
      const Tensor host = p->value.to(Device::CPU);
      std::vector<float> values;
      if (host.dtype() == DType::F64) {  // reference networks: TensorBoard's buckets need no more
        for (double v : host.to_vector<double>()) values.push_back(float(v));
      } else {
        values = host.to_vector<float>();
      }
      train_->histogram(p->name, step, values.data(), values.size());
    }
  write_samples(context.network, step);
  train_->flush();
  if (validation_) validation_->flush();
}

void TensorBoard::on_train_end(TrainingContext&) {
  train_.reset();
  validation_.reset();
}

void TensorBoard::write_balance(const EpochLog& log, const Network& net, int64_t step) {
  const BalanceDiagnostics& d = log.balance;
  const auto& tasks = net.tasks();
  const auto scalar = [&](const std::string& tag, double v) {
    if (std::isfinite(v)) train_->scalar(tag, step, v);  // undefined ones (no step) are left out
  };
  for (size_t t = 0; t < tasks.size(); ++t) {
    if (t < d.weights.size()) scalar("balancer/weight/" + tasks[t].name, d.weights[t]);
    if (t < d.grad_norm.size()) scalar("balancer/grad_norm/" + tasks[t].name, d.grad_norm[t]);
  }
  if (d.cosine.size() != tasks.size() * tasks.size()) return;
  for (size_t i = 0; i < tasks.size(); ++i)
    for (size_t j = i + 1; j < tasks.size(); ++j) {
      const std::string pair = tasks[i].name + "," + tasks[j].name;
      scalar("balancer/grad_cosine/" + pair, d.cos(i, j));
      scalar("balancer/grad_conflict/" + pair, d.conflict_rate(i, j));
    }
}

void TensorBoard::write_samples(Network& net, int64_t step) {
  if (!options_.sample_data || options_.sample_rows.empty()) return;
  const std::string image = image_input(net, *options_.sample_data);
  if (image.empty()) return;
  const auto predictions =
      predict_rows(net, *options_.sample_data, options_.sample_rows, options_.value_names);
  GridOptions grid;
  grid.title = cat("epoch ", step, ": true / predicted");
  const Png png = prediction_grid_png(
      prediction_cells(net, *options_.sample_data, image, options_.sample_rows, predictions), grid);
  train_->image("sample_predictions", step, png.bytes, png.height, png.width, 3);
}

}  // namespace polytask::watch
