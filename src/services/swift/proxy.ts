// The Swift proxy on every control host behind the VIP: Keystone auth, every memcached server, the rings of the
// storage hosts. Registered in Keystone as object-store with each project's account in the URL.
import type { Deployment, HostSpec } from '../../model.js';
import { asUser, vipUrl } from '../api/framework.js';
import { type OpenstackUnit, defineOpenstackService } from '../api/openstack.js';
import {
  SWIFT_CONF,
  SWIFT_DIR,
  SWIFT_KEYSTONE_USER,
  SWIFT_LOG_DIR,
  SWIFT_PROXY_PORT,
  SWIFT_USER,
  renderProxyServerConf,
  renderSwiftConf,
} from './conf.js';
import { ensureRings } from './rings.js';
import { swiftHosts } from './storage.js';

const PROXY_CONF = `${SWIFT_DIR}/proxy-server.conf`;

export function renderSwiftProxy(dep: Deployment, host: HostSpec): OpenstackUnit {
  return {
    files: [
      { path: SWIFT_CONF, content: renderSwiftConf(dep, host), mode: 0o600, owner: SWIFT_USER },
      { path: PROXY_CONF, content: renderProxyServerConf(dep, host), mode: 0o600, owner: SWIFT_USER },
    ],
    dirs: [
      { path: SWIFT_DIR, mode: 0o755 },
      { path: SWIFT_LOG_DIR, mode: 0o755, owner: SWIFT_USER },
    ],
    daemons: [
      {
        name: 'swift-proxy-server',
        argv: asUser(SWIFT_USER, ['/usr/bin/swift-proxy-server', PROXY_CONF, '-v']),
        logFile: `${SWIFT_LOG_DIR}/proxy-server.log`,
        http: { port: SWIFT_PROXY_PORT, path: '/healthcheck' },
      },
    ],
  };
}

export const SWIFT_PROXY = defineOpenstackService({
  name: 'swift-proxy',
  title: 'swift-proxy',
  enable: { key: 'enable_swift', default: false },
  requires: [
    { service: 'keystone', why: 'it authenticates every request with Keystone' },
    { service: 'swift-storage', why: 'it stores objects on the storage hosts' },
  ],
  groups: ['swift-proxy-server', 'control'],
  noHosts: 'warning',
  passwords: ['swift_keystone_password', 'swift_hash_path_suffix', 'swift_hash_path_prefix'],
  packages: ['swift-proxy', 'python3-swiftclient', 'python3-keystonemiddleware'],
  recommends: false,
  keystone: (dep) => [
    {
      user: {
        name: SWIFT_KEYSTONE_USER.username,
        passwordKey: SWIFT_KEYSTONE_USER.passwordKey,
        roles: ['admin'],
      },
      service: { name: 'swift', type: 'object-store', description: 'Object Storage' },
      url: `${vipUrl(dep, SWIFT_PROXY_PORT)}/v1/AUTH_%(project_id)s`,
    },
  ],
  daemons: [
    {
      name: 'swift-proxy-server',
      stopTimeoutMs: 20_000,
      api: {
        lb: 'swift_api',
        port: SWIFT_PROXY_PORT,
        healthPath: '/healthcheck',
        // Large objects stream for as long as they take.
        extra: ['timeout client 6h', 'timeout server 6h'],
      },
    },
  ],
  render: renderSwiftProxy,
  afterConfig: (ctx, sql) => ensureRings(ctx, sql, swiftHosts(ctx.dep)),
});
