// What each head predicts for chosen examples, beside the truth, in words: the table of
// `polytask predict`, the cells of its --grid picture and of TensorBoard's sample-predictions
// image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/dataset.h"
#include "engine/network.h"
#include "watch/prediction_grid.h"

namespace polytask::watch {

struct HeadPrediction {
  std::string truth, predicted;  // "Bag", "7", "0.3120"
  double probability = 0;        // of the predicted class (classification heads)
  bool classifies = false;       // a class-index or binary head: right or wrong make sense
  bool wrong = false;
};

// Per task of the network, the names of its class indices (empty: the index itself).
using ValueNames = std::vector<std::vector<std::string>>;

// Inference on rows `rows` of `data` (in batches of the network's capacity): per row, per task.
// Classification heads: the arg-max class of the softmax (the sigmoid's side for binary
// cross-entropy) and its probability; regression heads: the value.
std::vector<std::vector<HeadPrediction>> predict_rows(Network& net, const Dataset& data,
                                                      const std::vector<int64_t>& rows,
                                                      const ValueNames& names);

// The first `count` rows of `data` (in order) with a wrong prediction on any classification
// head; fewer when the data has fewer.
std::vector<int64_t> wrong_rows(Network& net, const Dataset& data, int64_t count,
                                const ValueNames& names);

// Grid cells: the rows' images (input `image`, (N, C, H, W) with C 1 or 3) with one line per
// head, "task: truth / predicted". Throws naming the input when it is not an image.
std::vector<GridCell> prediction_cells(const Network& net, const Dataset& data,
                                       const std::string& image, const std::vector<int64_t>& rows,
                                       const std::vector<std::vector<HeadPrediction>>& predictions);

// The name of the network's image input (rank 3 per sample, 1 or 3 channels); empty if none.
std::string image_input(const Network& net, const Dataset& data);

}  // namespace polytask::watch
