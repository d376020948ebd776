#include "agent/volume_extend.h"

#include <algorithm>

namespace plfm::agent {

void VolumeExtender::started(const std::vector<WorkloadVolume>& volumes,
                             const std::vector<uint64_t>& sizes) {
  volumes_.clear();
  for (size_t i = 0; i < volumes.size() && i < sizes.size(); ++i) {
    State& s = volumes_[volumes[i].volume_id];
    s.name = volumes[i].name;
    s.guest_bytes = sizes[i];
  }
}

std::vector<VolumeExtender::Request> VolumeExtender::due(const std::vector<WorkloadVolume>& volumes,
                                                         SteadyTime now) {
  std::vector<Request> out;
  for (size_t i = 0; i < volumes.size(); ++i) {
    const WorkloadVolume& v = volumes[i];
    State& s = volumes_[v.volume_id];
    s.name = v.name;
    if (s.in_flight || v.size_bytes <= s.guest_bytes || v.size_bytes == s.refused_bytes) continue;
    const uint32_t id = next_id_++;
    s.in_flight = id;
    s.in_flight_bytes = v.size_bytes;
    s.sent = now;
    out.push_back({id, i, v.volume_id, v.size_bytes});
  }
  return out;
}

std::optional<VolumeExtender::Outcome> VolumeExtender::answered(uint32_t id,
                                                                const std::string& error) {
  for (auto& [volume_id, s] : volumes_) {
    if (s.in_flight != id) continue;
    s.in_flight.reset();
    if (error.empty()) {
      s.guest_bytes = std::max(s.guest_bytes, s.in_flight_bytes);
    } else {
      s.refused_bytes = s.in_flight_bytes;
    }
    return Outcome{volume_id, s.name, s.in_flight_bytes, error};
  }
  return std::nullopt;
}

std::vector<VolumeExtender::Outcome> VolumeExtender::expire(SteadyTime now) {
  std::vector<uint32_t> late;
  for (const auto& [volume_id, s] : volumes_) {
    if (s.in_flight && now - s.sent >= kAnswerTimeout) late.push_back(*s.in_flight);
  }
  std::vector<Outcome> out;
  for (uint32_t id : late) {
    if (auto o = answered(id, "the guest did not answer RESIZE_VOLUME within 30 s")) {
      out.push_back(std::move(*o));
    }
  }
  return out;
}

}  // namespace plfm::agent
