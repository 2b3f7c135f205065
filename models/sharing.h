// How the tasks share the trunk: the [sharing] table of a model config (and the CLI's
// --sharing, --branch-after, ...), applied by rewriting the config's layers before the model
// is built. A config is written as hard parameter sharing — one trunk, heads on its last
// layer (the fan-out); the modes turn it into:
//
//   hard          the trunk's first `branch_after` layers shared, the rest copied per task
//                 (default: all shared, the config as written)
//   separate      one whole trunk per task, nothing shared (branch_after defaults to 0)
//   soft          separate trunks, and an L2 penalty of strength `soft_strength` pulling each
//                 copied layer's copies together (kernels/soft_sharing.h)
//   cross_stitch  separate trunks mixed by cross-stitch units (Misra et al. 2016) after the
//                 copied layers listed in `cross_stitch_after` (default: every copied
//                 pooling and dense layer, where Misra et al. put them)
//   mmoe          `experts` copies of the unshared trunk as experts, and per task a softmax
//                 gate over them read from the branch point (Ma et al. 2018, "Modeling Task
//                 Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts")
//
// The trunk is the layers every task's output depends on, in config order; branch_after
// counts them (0 to their number) or names the last shared one. Copies are named
// "<layer>@<task>" ("<layer>@expert<e>" for MMoE): '@' never occurs in a config's own names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace polytask::models {

struct SharingOptions {
  std::string mode = "hard";
  // "" (the mode's default), a count of trunk layers ("2"), or the last shared layer's name.
  std::string branch_after;
  double soft_strength = 1e-3;
  std::vector<std::string> cross_stitch_after;
  double cross_stitch_self_weight = 0.9;  // α of a task's own activation at initialisation
  int64_t experts = 4;
  bool is_default() const { return mode == "hard" && branch_after.empty(); }
};

// hard, separate, soft, cross_stitch, mmoe.
const std::vector<std::string>& sharing_modes();

// Throws a one-line polytask::Error for an unknown mode or an option out of range.
void validate_sharing(const SharingOptions& sharing);

}  // namespace polytask::models
