#include "engine/dataset.h"

namespace polytask {

namespace {
const Tensor& find(const std::vector<NamedTensor>& list, const std::string& name, const char* what) {
  for (const auto& nt : list)
    if (nt.name == name) return nt.tensor;
  std::string known;
  for (const auto& nt : list) known += (known.empty() ? "" : ", ") + nt.name;
  fail("the dataset has no ", what, " named '", name, "' (it has: ", known, ")");
}
}  // namespace

Dataset Dataset::rows(int64_t begin, int64_t end) const {
  Dataset out;
  for (const auto& nt : inputs) out.inputs.push_back({nt.name, nt.tensor.slice(begin, end)});
  for (const auto& nt : targets) out.targets.push_back({nt.name, nt.tensor.slice(begin, end)});
  return out;
}

const Tensor& Dataset::input(const std::string& name) const { return find(inputs, name, "input"); }
const Tensor& Dataset::target(const std::string& name) const { return find(targets, name, "target"); }

void Dataset::validate() const {
  if (inputs.empty()) fail("the dataset has no inputs");
  const int64_t n = size();
  for (const auto* list : {&inputs, &targets})
    for (const auto& nt : *list)
      if (nt.tensor.dim(0) != n)
        fail("dataset: '", nt.name, "' has ", nt.tensor.dim(0), " rows but '",
             inputs.front().name, "' has ", n);
}

}  // namespace polytask
