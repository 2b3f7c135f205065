// Training curves of one or several runs in one figure (PNG and SVG), to compare runs and see
// how each head learns without reading metrics.jsonl.
#pragma once

#include <string>
#include <vector>

#include "watch/run_history.h"

namespace polytask::watch {

// One figure for one or several runs: per head a row with its loss panel and one panel per
// metric (train solid, validation dashed, one colour per run, a legend naming the runs and
// train/validation), epochs on x; plus a last row with each head's balancer weight per epoch
// when any run's weights move (differ between epochs). Heads are matched across runs by name (a
// head missing from a run is just absent there). NaN points are skipped and break the line.
// Writes both files atomically (write_file.h); the PNG is drawn at twice the SVG's size for
// sharpness. Throws polytask::Error naming the path that could not be written, or when `runs`
// is empty.
void plot_curves(const std::vector<RunHistory>& runs, const std::string& title,
                 const std::string& png_path, const std::string& svg_path);

}  // namespace polytask::watch
