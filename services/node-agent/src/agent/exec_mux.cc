#include "agent/exec_mux.h"

#include "plfm/core/log.h"

namespace plfm::agent {
namespace gp = guest_proto;

namespace {

Error protocolError(const std::string& message) {
  return Error(std::string(kExecProtocol), message);
}

// Exactly one exec frame: the wire protocol between hops puts one frame in
// each WebSocket message (exec-sessions.md §Wire protocol between hops).
Result<gp::Frame> oneFrame(std::string_view message) {
  gp::Decoder decoder;
  decoder.feed(message);
  auto frame = decoder.next();
  if (!frame) return protocolError("not an exec frame: " + frame.error().toString());
  if (!*frame) return protocolError("a message must hold one whole frame");
  if (decoder.buffered() != 0) return protocolError("a message must hold exactly one frame");
  const auto t = static_cast<uint8_t>((*frame)->type);
  if (t < static_cast<uint8_t>(gp::FrameType::kExecOpen) ||
      t > static_cast<uint8_t>(gp::FrameType::kExecWindow)) {
    return protocolError("not an exec frame type: " + gp::frameTypeName((*frame)->type));
  }
  return std::move(**frame);
}

template <typename T>
Result<void> checked(const gp::Result<T>& decoded, std::string_view what) {
  if (!decoded) return protocolError(std::string(what) + ": " + decoded.error().toString());
  return ok();
}

}  // namespace

void setFrameStream(std::string& frame, uint16_t stream) {
  if (frame.size() < gp::kHeaderBytes) return;
  frame[2] = static_cast<char>(stream >> 8);
  frame[3] = static_cast<char>(stream & 0xff);
}

// --- ExecSession ---

ExecSession::ExecSession(std::weak_ptr<ExecMux> mux, uint16_t stream, uint32_t window)
    : mux_(std::move(mux)),
      stream_(stream),
      out_credit_(window),
      in_credit_(gp::kExecInitialWindow) {}

Result<void> ExecSession::fromClient(std::string_view message) {
  PLFM_ASSIGN_OR_RETURN(gp::Frame frame, oneFrame(message));
  switch (frame.type) {
    case gp::FrameType::kExecData: {
      auto d = gp::decodeExecData(frame.payload);
      PLFM_TRY(checked(d, "EXEC_DATA"));
      if (d->fd != gp::ExecFd::kStdin) return protocolError("a client sends stdin only");
      std::lock_guard lock(mu_);
      if (static_cast<int64_t>(d->data.size()) > in_credit_) {
        return Error(std::string(kExecCredit), "stdin beyond the credit the command granted");
      }
      in_credit_ -= static_cast<int64_t>(d->data.size());
      break;
    }
    case gp::FrameType::kExecWindow: {
      auto w = gp::decodeExecWindow(frame.payload);
      PLFM_TRY(checked(w, "EXEC_WINDOW"));
      std::lock_guard lock(mu_);
      if (out_credit_ + w->increment > gp::kMaxExecCredit) {
        return Error(std::string(kExecCredit), "EXEC_WINDOW takes the output credit past 2^31-1");
      }
      out_credit_ += w->increment;
      break;
    }
    case gp::FrameType::kExecResize:
      PLFM_TRY(checked(gp::decodeExecResize(frame.payload), "EXEC_RESIZE"));
      break;
    case gp::FrameType::kExecSignal:
      PLFM_TRY(checked(gp::decodeExecSignal(frame.payload), "EXEC_SIGNAL"));
      break;
    case gp::FrameType::kExecClose:
      PLFM_TRY(checked(gp::decodeExecClose(frame.payload), "EXEC_CLOSE"));
      break;
    default:
      return protocolError("a client does not send " + gp::frameTypeName(frame.type));
  }
  auto mux = mux_.lock();
  if (!mux) return Error(std::string(kExecLost), "the instance is gone");
  std::string bytes(message);
  setFrameStream(bytes, stream_);
  return mux->sendFor(*this, bytes);
}

std::optional<ExecEvent> ExecSession::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] {
    return woken_ || lost_ || window_ != 0 || !data_.empty() || exit_.has_value();
  });
  if (woken_) {
    woken_ = false;
    return std::nullopt;
  }
  if (lost_) return ExecEvent{ExecEvent::Kind::kLost, {}, *lost_};
  if (window_ != 0) {
    const auto inc = static_cast<uint32_t>(window_);
    window_ = 0;
    auto frame = gp::encode(gp::ExecWindow{inc}, gp::kFirstExecStream);
    if (frame) return ExecEvent{ExecEvent::Kind::kWindow, std::move(*frame), {}};
  }
  if (!data_.empty()) {
    ExecEvent ev{ExecEvent::Kind::kData, std::move(data_.front()), {}};
    data_.pop_front();
    return ev;
  }
  if (exit_) {
    ExecEvent ev{ExecEvent::Kind::kExit, std::move(*exit_), {}};
    exit_.reset();
    return ev;
  }
  return std::nullopt;
}

void ExecSession::wake() {
  std::lock_guard lock(mu_);
  woken_ = true;
  cv_.notify_all();
}

void ExecSession::abort() {
  {
    std::lock_guard lock(mu_);
    if (aborted_ || exited_) return;
    aborted_ = true;
  }
  auto mux = mux_.lock();
  auto frame = gp::encode(gp::ExecClose{gp::ExecCloseKind::kAbort}, stream_);
  if (mux && frame) (void)mux->sendFor(*this, *frame);
}

bool ExecSession::deliver(const gp::Frame& frame) {
  std::lock_guard lock(mu_);
  if (frame.type == gp::FrameType::kExecExit) exited_ = true;  // even when nobody listens
  if (lost_ || (exited_ && frame.type != gp::FrameType::kExecExit)) return true;  // dropped
  std::string bytes;
  switch (frame.type) {
    case gp::FrameType::kExecData: {
      auto d = gp::decodeExecData(frame.payload);
      if (!d || d->fd == gp::ExecFd::kStdin) return false;
      // A guest never sends more than it was granted; one that does would
      // make the agent buffer without bound.
      if (static_cast<int64_t>(d->data.size()) > out_credit_) return false;
      out_credit_ -= static_cast<int64_t>(d->data.size());
      auto encoded = gp::encodeFrame(frame.type, gp::kFirstExecStream, frame.payload);
      if (!encoded) return false;
      data_.push_back(std::move(*encoded));
      break;
    }
    case gp::FrameType::kExecWindow: {
      auto w = gp::decodeExecWindow(frame.payload);
      if (!w || in_credit_ + w->increment > gp::kMaxExecCredit) return false;
      in_credit_ += w->increment;
      window_ += w->increment;
      break;
    }
    case gp::FrameType::kExecExit: {
      auto e = gp::decodeExecExit(frame.payload);
      if (!e) return false;
      auto encoded = gp::encodeFrame(frame.type, gp::kFirstExecStream, frame.payload);
      if (!encoded) return false;
      exit_ = std::move(*encoded);
      exited_ = true;
      break;
    }
    default:
      return false;  // OPEN, RESIZE, SIGNAL, CLOSE travel host -> guest only
  }
  cv_.notify_all();
  return true;
}

void ExecSession::lose(const std::string& reason) {
  std::lock_guard lock(mu_);
  if (!lost_) lost_ = reason;
  data_.clear();
  cv_.notify_all();
}

bool ExecSession::exited() const {
  std::lock_guard lock(mu_);
  return exited_;
}

// --- ExecMux ---

void ExecMux::attach(SendFn send) {
  {
    std::lock_guard lock(send_mu_);
    send_ = std::move(send);
  }
  std::lock_guard lock(mu_);
  attached_ = true;
  refuse_.clear();
}

void ExecMux::detach(const std::string& reason) {
  {
    std::lock_guard lock(send_mu_);  // waits for a send in progress
    send_ = nullptr;
  }
  std::map<uint16_t, std::shared_ptr<ExecSession>> streams;
  {
    std::lock_guard lock(mu_);
    if (!attached_ && streams_.empty()) return;
    attached_ = false;
    streams.swap(streams_);
  }
  for (auto& [stream, session] : streams) session->lose(reason);
  if (!streams.empty()) {
    log::info("exec sessions lost", {{"instance_id", instance_id_},
                                     {"sessions", static_cast<int64_t>(streams.size())},
                                     {"reason", reason}});
  }
}

void ExecMux::refuseNew(const std::string& reason) {
  std::lock_guard lock(mu_);
  refuse_ = reason;
}

bool ExecMux::attached() const {
  std::lock_guard lock(mu_);
  return attached_;
}

size_t ExecMux::sessions() const {
  std::lock_guard lock(mu_);
  return streams_.size();
}

Result<std::shared_ptr<ExecSession>> ExecMux::open(std::string_view open_payload) {
  auto decoded = gp::decodeExecOpen(open_payload);
  if (!decoded) return protocolError("EXEC_OPEN: " + decoded.error().toString());
  std::shared_ptr<ExecSession> session;
  {
    std::lock_guard lock(mu_);
    if (!attached_) {
      return Error(std::string(kExecRefused), "the instance's host channel is not connected");
    }
    if (!refuse_.empty()) return Error(std::string(kExecRefused), refuse_);
    if (streams_.size() >= kMaxExecSessions) {
      return Error(std::string(kExecRefused), "too many exec sessions on this instance (64)");
    }
    // Round robin, so a stream id freed by EXIT is not reused right away.
    uint16_t stream = next_stream_;
    while (streams_.count(stream) != 0) {
      stream = stream == gp::kLastExecStream ? gp::kFirstExecStream : stream + 1;
    }
    next_stream_ = stream == gp::kLastExecStream ? gp::kFirstExecStream : stream + 1;
    session = std::make_shared<ExecSession>(weak_from_this(), stream, decoded->window);
    streams_[stream] = session;
  }
  auto frame = gp::encodeFrame(gp::FrameType::kExecOpen, session->stream(), open_payload);
  Result<void> sent =
      frame ? sendFor(*session, *frame) : Result<void>(protocolError(frame.error().toString()));
  if (!sent) {
    std::lock_guard lock(mu_);
    if (auto it = streams_.find(session->stream()); it != streams_.end() && it->second == session) {
      streams_.erase(it);
    }
    return sent.error();
  }
  return session;
}

Result<void> ExecMux::sendFor(const ExecSession& session, const std::string& frame) {
  std::lock_guard lock(send_mu_);
  if (!send_) return Error(std::string(kExecLost), "the instance's host channel closed");
  // Checked under send_mu_: once the guest's EXIT freed the stream, a new
  // session's OPEN on the same id can only be sent after this frame.
  if (session.exited()) return ok();
  auto sent = send_(frame);
  if (!sent) return Error(std::string(kExecLost), "sending to the guest failed");
  return ok();
}

void ExecMux::onGuestFrame(const gp::Frame& frame) {
  std::shared_ptr<ExecSession> session;
  bool good = true;
  {
    std::lock_guard lock(mu_);
    auto it = streams_.find(frame.stream);
    if (it == streams_.end()) return;  // no session (a late frame): dropped
    session = it->second;
    // Under mu_, so that an EXIT frees the stream (exec-sessions.md: in use
    // from OPEN until the guest's EXIT) only once its session knows.
    good = session->deliver(frame);
    if (frame.type == gp::FrameType::kExecExit) streams_.erase(it);
  }
  if (!good) {
    log::warn("the guest broke the exec protocol; aborting the session",
              {{"instance_id", instance_id_},
               {"stream", static_cast<int64_t>(frame.stream)},
               {"frame", gp::frameTypeName(frame.type)}});
    session->lose("the guest broke the exec protocol");
    session->abort();
  }
}

}  // namespace plfm::agent
