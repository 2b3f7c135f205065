// polytask eval / predict: use a trained run directory on its test split.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/setup.h"
#include "engine/checkpoint.h"
#include "engine/trainer.h"

namespace polytask::cli {

namespace {

void declare_run_options(Args& a) {
  a.option("run", "DIR", "", "a directory written by 'polytask train' (required)");
  a.option("data", "SOURCE", "", "data to use instead of the run's (same input shapes)");
  a.option("device", "cpu|cuda|auto", "auto", "where to run");
  a.option("batch-size", "N", "", "examples per batch (default: the run's)");
  a.option("limit", "N", "", "use at most N test examples (default: the run's)");
  a.flag("best", "use the best epoch's parameters (RUN/best, written by train --save-best or "
                 "--restore-best-weights) instead of the last epoch's");
  declare_threads_option(a);
}

bool parse_or_help(Args& a, const std::vector<std::string>& argv) {
  if (!a.parse(argv)) {
    std::cout << a.usage();
    return false;
  }
  if (!a.is_set("run")) throw UsageError("--run DIR is required (see --help)");
  apply_threads_option(a);
  return true;
}

// The run's config and settings, its data (or --data) with task targets, and its parameters.
Setup open_run(const Args& a) {
  const std::string dir = a.get("run");
  const std::string conf = run_file(dir, "run.conf");
  Settings s = parse_settings(read_text_file(conf), conf);
  if (a.is_set("batch-size"))
    s["batch-size"] = std::to_string(a.get_int_in("batch-size", 1, kMaxBatchSize));
  if (a.is_set("limit"))
    s["limit"] = std::to_string(a.get_int_in("limit", 0, std::numeric_limits<int64_t>::max()));
  datasets::LoadOptions load;
  NetworkOptions options;
  run_options(s, load, options);
  Setup setup = prepare(models::load_config_file(run_file(dir, "config.toml")),
                        a.is_set("data") ? a.get("data") : setting(s, "data"), load, options,
                        choose_device(a.get("device")));
  if (a.is_set("best")) {
    const std::string best = run_file(dir, "best");
    if (!has_checkpoint(best))
      throw UsageError(cat("--best: ", dir, " has no best model (train with --save-best MONITOR)"));
    load_parameters(best, *setup.network);
  } else {
    load_parameters(dir, *setup.network);
  }
  return setup;
}

std::vector<int64_t> parse_indices(const std::string& text, int64_t size) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto v = to_int(item);
    if (!v) throw UsageError(cat("--indices: '", item, "' is not an index"));
    if (*v < 0 || *v >= size) throw UsageError(cat("--indices: ", *v, " is outside the test set [0, ", size, ")"));
    out.push_back(*v);
  }
  return out;
}

std::string cell(const std::string& text, size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

int run_eval(const std::vector<std::string>& argv) {
  Args a("eval", "Evaluates a trained run on its test split and prints each head's loss and metric.");
  declare_run_options(a);
  if (!parse_or_help(a, argv)) return 0;
  Setup setup = open_run(a);
  Adam unused;  // evaluation needs no optimiser; Trainer's interface wants one
  Trainer trainer(*setup.network, unused);
  const auto totals = trainer.evaluate(setup.data.test, setup.network->options().max_batch);
  std::cout << "Test (" << setup.data.test.size() << " examples): "
            << trainer.format_metrics(totals, "test_") << "\n";
  return 0;
}

int run_predict(const std::vector<std::string>& argv) {
  Args a("predict",
         "Prints each head's prediction (class and probability, or value) for chosen test "
         "examples beside the true labels.");
  declare_run_options(a);
  a.option("indices", "I,J,...", "", "test examples to show");
  a.option("count", "N", "10", "show the first N test examples (when --indices is not given)");
  if (!parse_or_help(a, argv)) return 0;
  Setup setup = open_run(a);
  Network& net = *setup.network;
  const Dataset& test = setup.data.test;
  std::vector<int64_t> rows;
  if (a.is_set("indices")) {
    rows = parse_indices(a.get("indices"), test.size());
  } else {
    const int64_t count = a.get_int("count");
    if (count <= 0) throw UsageError(cat("--count must be positive, got ", count));
    for (int64_t i = 0; i < std::min(count, test.size()); ++i) rows.push_back(i);
  }

  std::string header = cell("index", 7);
  for (const auto& t : net.tasks()) header += cell(t.name + " true", 16) + cell(t.name + " predicted", 24);
  std::cout << header << "\n";
  const int64_t cap = net.options().max_batch;
  for (size_t begin = 0; begin < rows.size(); begin += size_t(cap)) {
    const int64_t n = std::min<int64_t>(cap, int64_t(rows.size() - begin));
    const auto& g = net.model().graph();
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const Tensor& src = test.input(g.values[g.inputs[i]].name);
      const Tensor& dst = net.input_buffer(i);
      for (int64_t r = 0; r < n; ++r) dst.slice(r, r + 1).copy_from(src.slice(rows[begin + size_t(r)], rows[begin + size_t(r)] + 1));
    }
    net.forward(n, /*training=*/false, /*with_losses=*/false);
    for (int64_t r = 0; r < n; ++r) {
      const int64_t row = rows[begin + size_t(r)];
      std::string line = cell(std::to_string(row), 7);
      for (const auto& task : net.tasks()) {
        const Tensor out = net.output(task.output_name()).slice(r, r + 1).to(Device::CPU);
        const Tensor truth = test.target(task.name).slice(row, row + 1);
        if (task.loss == LossKind::MeanSquaredError) {
          line += cell(fixed(truth.item(0), 4), 16) + cell(fixed(out.item(0), 4), 24);
          continue;
        }
        int64_t best = 0;
        double prob;
        if (task.loss == LossKind::BinaryCrossEntropy) {  // the first unit's sigmoid
          prob = 1 / (1 + std::exp(-out.item(0)));
          best = prob >= 0.5 ? 1 : 0;
        } else {  // the softmax of the logits
          const int64_t k = out.numel();
          for (int64_t c = 1; c < k; ++c)
            if (out.item(c) > out.item(best)) best = c;
          double sum = 0;
          for (int64_t c = 0; c < k; ++c) sum += std::exp(out.item(c) - out.item(best));
          prob = 1 / sum;
        }
        const std::string true_text = truth.dtype() == DType::I32 ? std::to_string(int64_t(truth.item(0))) : fixed(truth.item(0), 2);
        line += cell(true_text, 16) + cell(std::to_string(best) + " (p=" + fixed(prob, 3) + ")", 24);
      }
      std::cout << line << "\n";
    }
  }
  return 0;
}

}  // namespace polytask::cli
