// Keystone registration, shared by every OpenStack service: the `service` project, each service's user with its
// roles there, the catalog entry and its endpoints on the VIP. One Python process on the first Keystone host does it
// all through the VIP with keystoneclient (one `openstack` call per step costs 2-3 s here; fourteen of them took 41 s):
// its program comes on stdin, what it must ensure (passwords included) in a 0600 file that is removed after the run,
// so no secret is ever in a command line. Every step reads before it writes: a second run changes nothing. The run is
// skipped altogether when a digest of what was asked matches the one stored after the last successful run.
import type { Deployment } from '../../model.js';
import { hostsFor } from '../../topology.js';
import { CommandError } from '../../util/exec.js';
import type { KeystoneRegistration } from '../contract.js';
import { digest } from '../files.js';
import type { DeployContext } from '../types.js';
import { hostOf } from '../types.js';
import { type AdminSql, KEYSTONE_PUBLIC_PORT, readMarkers, vipUrl, writeMarker } from './framework.js';

/** Keystone's region of every endpoint. */
export const REGION = 'RegionOne';
/** The project every service user has its roles in. */
export const SERVICE_PROJECT = 'service';
/** The interfaces registered for each endpoint (the lab has one network: all on the internal VIP). */
export const INTERFACES = ['public', 'internal', 'admin'] as const;

/** What the registration program is given: JSON in a 0600 file. */
export interface RegistrationRequest {
  readonly auth_url: string;
  readonly admin: { readonly username: string; readonly password: string; readonly project: string };
  readonly region: string;
  readonly project: string;
  readonly roles: readonly string[];
  readonly users: readonly { name: string; password: string; roles: readonly string[] }[];
  readonly services: readonly {
    name: string;
    type: string;
    description: string;
    endpoints: Readonly<Record<string, string>>;
  }[];
}

/** The request for a service's registrations; pure. */
export function registrationRequest(
  dep: Deployment,
  regs: readonly KeystoneRegistration[],
): RegistrationRequest {
  const roles = [...new Set(regs.flatMap((r) => r.user.roles))].sort();
  return {
    auth_url: `${vipUrl(dep, KEYSTONE_PUBLIC_PORT)}/v3`,
    admin: { username: 'admin', password: dep.passwords.keystone_admin_password ?? '', project: 'admin' },
    region: REGION,
    project: SERVICE_PROJECT,
    roles,
    users: regs.map((r) => ({
      name: r.user.name,
      password: dep.passwords[r.user.passwordKey] ?? '',
      roles: r.user.roles,
    })),
    services: regs.map((r) => ({
      name: r.service.name,
      type: r.service.type,
      description: r.service.description,
      endpoints: Object.fromEntries(INTERFACES.map((i) => [i, r.url])),
    })),
  };
}

/**
 * The program (python3, keystoneclient): ensures, in order, the project, the roles, each user (created, or its
 * password set when it no longer authenticates), each role assignment, each service and each endpoint (created, or
 * its URL set). Prints one JSON line: what it changed. Connection errors through the VIP (a failover) are retried for
 * up to two minutes.
 */
export const REGISTRATION_PROGRAM = String.raw`
import json, sys, time
from keystoneauth1 import exceptions as ksa
from keystoneauth1 import session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client

req = json.load(open(sys.argv[1]))
changes = []

def retrying(fn):
    deadline = time.monotonic() + 120
    while True:
        try:
            return fn()
        except (ksa.ConnectFailure, ksa.ConnectTimeout, ksa.ServiceUnavailable, ksa.BadGateway, ksa.GatewayTimeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)

def sess_for(username, password, project):
    auth = v3.Password(auth_url=req["auth_url"], username=username, password=password, project_name=project,
                       user_domain_id="default", project_domain_id="default")
    return session.Session(auth=auth, timeout=30)

ks = client.Client(session=sess_for(req["admin"]["username"], req["admin"]["password"], req["admin"]["project"]),
                   interface="internal", region_name=req["region"])

def find(manager, **filters):
    return retrying(lambda: manager.list(**filters))

projects = find(ks.projects, name=req["project"], domain="default")
project = projects[0] if projects else None
if project is None:
    project = retrying(lambda: ks.projects.create(name=req["project"], domain="default",
                                                  description="OpenStack services"))
    changes.append("project " + req["project"] + " created")

roles = {}
for name in req["roles"]:
    found = find(ks.roles, name=name)
    role = found[0] if found else None
    if role is None:
        role = retrying(lambda: ks.roles.create(name=name))
        changes.append("role " + name + " created")
    roles[name] = role

def authenticates(name, password):
    try:
        retrying(lambda: sess_for(name, password, req["project"]).get_token())
        return True
    except ksa.Unauthorized:
        return False

for u in req["users"]:
    found = find(ks.users, name=u["name"], domain="default")
    user = found[0] if found else None
    if user is None:
        user = retrying(lambda: ks.users.create(name=u["name"], domain="default", password=u["password"],
                                                default_project=project))
        changes.append("user " + u["name"] + " created")
    for name in u["roles"]:
        have = find(ks.role_assignments, user=user, project=project, role=roles[name])
        if not have:
            retrying(lambda: ks.roles.grant(roles[name], user=user, project=project))
            changes.append("role " + name + " granted to " + u["name"])
    if not authenticates(u["name"], u["password"]):
        retrying(lambda: ks.users.update(user, password=u["password"]))
        changes.append("password of " + u["name"] + " set")

for s in req["services"]:
    found = [x for x in find(ks.services, type=s["type"]) if x.name == s["name"]]
    service = found[0] if found else None
    if service is None:
        service = retrying(lambda: ks.services.create(name=s["name"], type=s["type"], description=s["description"]))
        changes.append("service " + s["name"] + " (" + s["type"] + ") created")
    for interface, url in sorted(s["endpoints"].items()):
        eps = find(ks.endpoints, service=service, interface=interface, region=req["region"])
        if not eps:
            retrying(lambda: ks.endpoints.create(service=service, url=url, interface=interface, region=req["region"]))
            changes.append(s["name"] + " " + interface + " endpoint created")
            continue
        for extra in eps[1:]:
            retrying(lambda: ks.endpoints.delete(extra))
            changes.append(s["name"] + " " + interface + " duplicate endpoint removed")
        if eps[0].url != url:
            retrying(lambda: ks.endpoints.update(eps[0], url=url))
            changes.append(s["name"] + " " + interface + " endpoint set to " + url)

print(json.dumps(changes))
`;

const REQUEST_FILE = '/etc/stackha/keystone-registration.json';

/** The marker a service's registration is recorded under, and what it records (a digest, never a secret). */
export function registrationMarker(dep: Deployment, service: string, regs: readonly KeystoneRegistration[]) {
  return { name: `${service}:keystone`, value: digest(JSON.stringify(registrationRequest(dep, regs))) };
}

/**
 * Registers a service in Keystone unless the last successful registration asked for exactly the same (same users,
 * passwords, roles, URLs). Runs on the first Keystone host. Resolves with what changed.
 */
export async function registerInKeystone(
  ctx: DeployContext,
  sql: AdminSql,
  service: string,
  regs: readonly KeystoneRegistration[],
): Promise<string[]> {
  if (regs.length === 0) return [];
  const marker = registrationMarker(ctx.dep, service, regs);
  if ((await readMarkers(sql, service)).get(marker.name) === marker.value) return [];
  const first = hostsFor(ctx.dep, 'keystone')[0];
  if (!first) throw new Error(`${service}: Keystone registration needs Keystone (enable_keystone)`);
  const host = hostOf(ctx, first.name);
  await host.writeFile(REQUEST_FILE, JSON.stringify(registrationRequest(ctx.dep, regs)), { mode: 0o600 });
  try {
    const started = Date.now();
    const r = await host.exec(['/usr/bin/python3', '-', REQUEST_FILE], {
      input: REGISTRATION_PROGRAM,
      timeoutMs: 300_000,
    });
    if (r.code !== 0) throw new CommandError(r, `${first.name} (Keystone registration of ${service})`);
    const changes = JSON.parse(r.stdout.trim().split('\n').slice(-1)[0] ?? '[]') as string[];
    await writeMarker(sql, marker.name, marker.value, first.name);
    ctx.log(
      `${service}: Keystone ${changes.length ? changes.join('; ') : 'already had everything'} ` +
        `(${((Date.now() - started) / 1000).toFixed(1)} s on ${first.name})`,
    );
    return changes;
  } finally {
    await host.remove(REQUEST_FILE);
  }
}
