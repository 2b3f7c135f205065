// polytask plot: training curves of one run, or several overlaid (comparing balancers is the
// common question), as PNG and SVG.
#include "cli/plot.h"

#include <filesystem>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/setup.h"
#include "watch/curves_plot.h"
#include "watch/run_history.h"

namespace polytask::cli {

namespace {

std::string run_label(const std::string& dir, const std::string& balancer) {
  std::string name = std::filesystem::path(dir).lexically_normal().filename().string();
  if (name.empty() || name == ".") name = std::filesystem::path(dir).lexically_normal().string();
  const bool said =
      balancer.empty() || balancer == "static" || name.find(balancer) != std::string::npos;
  return said ? name : name + " (" + balancer + ")";
}

// FILE.png -> FILE.svg beside it.
std::string svg_beside(const std::string& png) {
  std::filesystem::path p(png);
  return p.replace_extension(".svg").string();
}

}  // namespace

void draw_curves(const std::vector<std::string>& dirs, const std::string& title,
                 const std::string& png, const std::string& svg) {
  std::vector<watch::RunHistory> runs;
  for (const auto& dir : dirs) {
    auto history = watch::read_run_history(run_file(dir, "metrics.jsonl"), "");
    history.label = run_label(dir, history.balancer);
    runs.push_back(std::move(history));
  }
  watch::plot_curves(runs, title, png, svg);
}

int run_plot(const std::vector<std::string>& argv) {
  Args a("plot",
         "Draws training curves: per head its loss and metric per epoch, training against "
         "validation, and the balancer's weights when they move. Several --run overlay the runs "
         "in one picture, one colour each.");
  a.repeated("run", "DIR", "a directory written by 'polytask train' (give several to compare)");
  a.option("out", "FILE.png", "RUN/curves.png for one run, curves.png for several",
           "the PNG to write; the SVG goes beside it (FILE.svg)");
  a.option("title", "TEXT", "", "the figure's title (default: the runs' names)");
  if (!a.parse(argv)) {
    std::cout << a.usage();
    return 0;
  }
  const auto& dirs = a.all("run");
  if (dirs.empty()) throw UsageError("--run DIR is required (see --help)");
  for (const auto& dir : dirs)
    if (!std::filesystem::exists(run_file(dir, "metrics.jsonl")))
      throw UsageError(cat("--run ", dir,
                           ": no metrics.jsonl there (not a training run, or no "
                           "epoch finished yet)"));
  std::string png = a.is_set("out")    ? a.get("out")
                    : dirs.size() == 1 ? run_file(dirs[0], "curves.png")
                                       : std::string("curves.png");
  if (std::filesystem::path(png).extension() != ".png")
    throw UsageError(cat("--out ", png, ": expected a file name ending in .png"));
  std::string title = a.get("title");
  if (title.empty())
    for (const auto& dir : dirs) title += (title.empty() ? "" : " vs ") + run_label(dir, "");
  draw_curves(dirs, title, png, svg_beside(png));
  std::cout << "wrote " << png << " and " << svg_beside(png) << "\n";
  return 0;
}

}  // namespace polytask::cli
