// polytask eval / predict: use a trained run directory on its test split.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/setup.h"
#include "engine/checkpoint.h"
#include "engine/trainer.h"
#include "watch/prediction_grid.h"
#include "watch/predictions.h"
#include "watch/write_file.h"

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
         "Shows each head's prediction (class and probability, or value) for chosen test "
         "examples beside the true labels: a table, or with --grid a picture of the images with "
         "true and predicted labels under each, mistakes in red.");
  declare_run_options(a);
  a.option("indices", "I,J,...", "", "test examples to show");
  a.option("count", "N", "10", "show the first N test examples (when --indices is not given)");
  a.flag("wrong", "show the first --count examples some classification head gets wrong");
  a.option("grid", "FILE.png", "", "draw the examples as a picture instead of a table");
  a.option("columns", "N", "8", "--grid: images per row");
  if (!parse_or_help(a, argv)) return 0;
  if (a.is_set("indices") && a.is_set("wrong")) throw UsageError("give --indices or --wrong, not both");
  const int64_t columns = a.get_int_in("columns", 1, 64);
  Setup setup = open_run(a);
  Network& net = *setup.network;
  const Dataset& test = setup.data.test;
  const watch::ValueNames names = task_value_names(setup);
  std::vector<int64_t> rows;
  if (a.is_set("indices")) {
    rows = parse_indices(a.get("indices"), test.size());
  } else {
    const int64_t count = a.get_int_in("count", 1, 100000);
    if (a.is_set("wrong")) {
      rows = watch::wrong_rows(net, test, count, names);
      if (rows.empty()) std::cout << "no test example is predicted wrongly\n";
    } else {
      for (int64_t i = 0; i < std::min(count, test.size()); ++i) rows.push_back(i);
    }
  }
  if (rows.empty()) return 0;
  const auto predictions = watch::predict_rows(net, test, rows, names);

  if (a.is_set("grid")) {
    const std::string image = watch::image_input(net, test);
    if (image.empty())
      throw UsageError("--grid: this model's inputs are not images (N, 1 or 3, H, W)");
    watch::GridOptions options;
    options.columns = int(columns);
    options.title = cat(std::filesystem::path(a.get("run")).lexically_normal().filename().string(),
                        a.is_set("wrong") ? ": mistakes" : "", " (true / predicted)");
    const watch::Png png = watch::prediction_grid_png(
        watch::prediction_cells(net, test, image, rows, predictions), options);
    watch::write_file_atomically(a.get("grid"), png.bytes);
    std::cout << "wrote " << a.get("grid") << " (" << rows.size() << " examples, " << png.width
              << "x" << png.height << ")\n";
    return 0;
  }

  std::string header = cell("index", 7);
  for (const auto& t : net.tasks()) header += cell(t.name + " true", 16) + cell(t.name + " predicted", 28);
  std::cout << header << "\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line = cell(std::to_string(rows[i]), 7);
    for (const auto& p : predictions[i]) {
      const std::string predicted =
          p.classifies ? p.predicted + " (p=" + fixed(p.probability, 3) + ")" + (p.wrong ? " x" : "")
                       : p.predicted;
      line += cell(p.truth, 16) + cell(predicted, 28);
    }
    std::cout << line << "\n";
  }
  return 0;
}

}  // namespace polytask::cli
