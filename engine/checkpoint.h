// Checkpoints: a directory with two safetensors files, so parameters open in Python
// (`safetensors.numpy.load_file("run/model.safetensors")`) and training resumes exactly.
//
//   DIR/model.safetensors           every parameter of the network, trainable ones and state
//                                   (BatchNorm running statistics), named by layer path
//                                   ("c1.weight", "bn.moving_mean"), in the network's dtype
//                                   (F32, or F64 for CPU reference networks: stored as they
//                                   are, so a round trip is bit-exact; loading converts
//                                   between F32 and F64 when the network's dtype differs).
//                                   Metadata: format, format_version, polytask_version,
//                                   parameter_count (trainable elements), state_count,
//                                   network_step, checkpoint_id.
//   DIR/training_state.safetensors  the optimiser's state tensors by their own names
//                                   ("adam.m", "adam.v", "adam.step") and the balancer's
//                                   ("balancer.uncertainty.log_variance", ...). Metadata:
//                                   format, format_version, checkpoint_id, epoch, network_step,
//                                   network_seed, optimizer, learning_rate, balancer, and the
//                                   caller's own keys (TrainingState::metadata: "config"...).
//
// The pair is committed as one: a kill or a full disk at any moment leaves either the previous
// pair or the new one, never a mix, and the run resumes. Layout of DIR:
//
//   DIR/checkpoints/<n>/{model,training_state}.safetensors   one directory per save
//   DIR/current -> checkpoints/<n>                           the committed pair
//   DIR/model.safetensors -> current/model.safetensors       the names users and Python open
//   DIR/training_state.safetensors -> current/training_state.safetensors
//
// A save writes both files (temporary file, fsync, rename) into a fresh checkpoints/<n+1>,
// fsyncs checkpoints/, then switches with one rename(2) of a new symlink over DIR/current and
// fsyncs DIR; only then are the top-level links made (once) and the older checkpoints/
// entries, with any abandoned by an interrupted save, removed. Loading reads DIR/current/ when
// it exists, else the two files at the top of DIR (run directories from before this layout;
// saving into one converts it). checkpoint_id — a digest of the model file's tensors,
// recorded in both files — still guards against a pair mixed by hand.
// (Mechanics and the crash-test seam: engine/checkpoint_layout.h.)
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "engine/network.h"
#include "engine/optimizer.h"

namespace polytask {

inline constexpr const char* kCheckpointModelFile = "model.safetensors";
inline constexpr const char* kCheckpointStateFile = "training_state.safetensors";

struct TrainingState {
  int64_t epoch = 0;          // completed epochs (FitOptions::initial_epoch when resuming)
  uint64_t network_step = 0;  // Network::step(): optimiser steps so far (keys dropout masks)
  // Caller's keys, stored as strings ("config" -> the resolved TOML, "preset", "data"...).
  // They may not reuse the reserved keys listed above.
  std::map<std::string, std::string> metadata;
  // The fan-out's balancer, as read back (save_checkpoint records the network's own).
  std::string balancer = "static";
};

// Writes a new pair and makes it DIR's current checkpoint (creating DIR and its parents when
// needed); the previous pair stays current if this throws. `optimizer` may be null: the state file then records no optimiser and
// load_training_state refuses it (load_parameters still works). st.network_step is ignored:
// the network's own step() is recorded.
void save_checkpoint(const std::string& dir, const Network& net, Optimizer* optimizer,
                     const TrainingState& st);

// Whether DIR holds a committed checkpoint (either layout).
bool has_checkpoint(const std::string& dir);

// Loads every parameter of `net` from DIR's model.safetensors (or from the file itself when
// `dir_or_file` is a file). Strict: every parameter present with its shape, nothing else;
// otherwise "checkpoint <path> is from another model: missing parameter X" (or "parameter X
// has shape (..) in the checkpoint but (..) in the model", "unexpected tensor X"), and `net` is
// left untouched.
void load_parameters(const std::string& dir_or_file, Network& net);

// Reads DIR/training_state.safetensors alone: epoch, network_step and the caller's metadata,
// without a network. For `--resume DIR`: rebuild the model from metadata["config"] first.
TrainingState read_training_state(const std::string& dir);

// Restores a training run: parameters (as load_parameters), the optimiser's state (moments,
// step count) and learning rate, and net.set_step(network_step); returns the epoch and the
// caller's metadata; the fan-out's balancer gets its saved state back. Throws, leaving `net`
// and `optimizer` untouched, when the checkpoint is from another model, another optimiser kind
// (adam vs sgd), another balancer (static vs uncertainty), or the two files do not belong
// together, or when `net` was built with another NetworkOptions::seed than the saved run
// (dropout masks would differ, so the run could not continue identically). Call
// optimizer.set_learning_rate afterwards to override the saved learning rate.
TrainingState load_training_state(const std::string& dir, Network& net, Optimizer& optimizer);

}  // namespace polytask
