// Routes, parsed then executed (api_routes.cc; docs/specs/api/v1.md
// "Routes"). Each mutation of the resource is a command struct that
// parse*() builds from the request alone (path parameters and body, no
// database: the unit tests run it), and that execute() carries out inside
// the mutation's transaction, returning the Mutation (answer and events).
// The handlers between them only check access and resolve the route's org;
// they are registered from the route table in api_routes.cc.
#pragma once

#include <optional>
#include <string>

#include "api.h"

namespace plfm::cp::routes {

// The process, port and PROXY protocol header a route sends its
// connections to: the part of a route that PUT may change.
struct Target {
  std::string process_type;
  int64_t backend_port = 0;
  std::string proxy_protocol = "none";
};

// POST /v1/envs/{env_id}/routes.
struct CreateRoute {
  EnvId env;
  std::string hostname;  // normalized; "" for tcp, "*" for a port's default route
  int64_t listener_port = 443;
  std::string protocol = "tls-passthrough";
  Target target;
};
[[nodiscard]] Result<CreateRoute> parseCreate(const http::Request& req);

// PUT /v1/routes/{route_id}: the fields given change, at least one of them.
struct UpdateRoute {
  RouteId route;
  std::optional<std::string> process_type;
  std::optional<int64_t> backend_port;
  std::optional<std::string> proxy_protocol;
};
[[nodiscard]] Result<UpdateRoute> parseUpdate(const http::Request& req);

// DELETE /v1/routes/{route_id}.
struct DeleteRoute {
  RouteId route;
};
[[nodiscard]] Result<DeleteRoute> parseDelete(const http::Request& req);

// What the handler resolved before the transaction: the org and app of the
// env (or route) the caller may see, and whether the caller is an admin.
struct Owner {
  std::string org_id;
  std::string app_id;
  bool admin = false;
};

// Inside the mutation's transaction. `api` gives the clock, options and the
// org's quota lock; `current` is the route as the caller saw it.
[[nodiscard]] Result<Mutation> execute(Api& api, const CreateRoute& c, const Owner& owner,
                                       pg::Transaction& tx);
[[nodiscard]] Result<Mutation> execute(Api& api, const UpdateRoute& c, const json::Json& current,
                                       pg::Transaction& tx);
[[nodiscard]] Result<Mutation> execute(const DeleteRoute& c, const std::string& org_id,
                                       pg::Transaction& tx);

}  // namespace plfm::cp::routes
