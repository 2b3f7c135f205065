// Pictures of runs: the training curves `polytask plot` draws, and train draws at its end.
#pragma once

#include <string>
#include <vector>

namespace polytask::cli {

// Draws the curves of the runs in `dirs` (their metrics.jsonl) into `png` and `svg`; each run
// is labelled by its directory's name, with its balancer when that is not static.
void draw_curves(const std::vector<std::string>& dirs, const std::string& title,
                 const std::string& png, const std::string& svg);

}  // namespace polytask::cli
