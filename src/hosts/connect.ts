import { labHost, readLabState } from '../lab/lab.js';
import type { Deployment } from '../model.js';
import type { Host } from './host.js';

export interface Connection {
  readonly hosts: ReadonlyMap<string, Host>;
}

/**
 * Host objects for every inventory host. With `stackha_lab` set, each inventory host is the lab namespace of
 * the same name; its inventory address must be the lab's address for it.
 */
export function connect(dep: Deployment): Connection {
  const lab = dep.globals.lab;
  if (!lab) {
    throw new Error(
      'globals.yml has no stackha_lab: reaching real hosts over SSH is not implemented yet; set stackha_lab to a lab name',
    );
  }
  const state = readLabState(lab);
  if (!state) throw new Error(`lab ${lab} is not up: run \`stackha lab up --name ${lab}\``);
  const hosts = new Map<string, Host>();
  const problems: string[] = [];
  for (const spec of dep.hosts) {
    const rec = state.hosts.find((h) => h.name === spec.name);
    if (!rec) {
      problems.push(
        `inventory host ${spec.name} is not a host of lab ${lab} (${state.hosts.map((h) => h.name).join(', ')})`,
      );
      continue;
    }
    if (rec.address !== spec.address) {
      problems.push(
        `inventory host ${spec.name} has address ${spec.address}, lab ${lab} gave it ${rec.address}`,
      );
      continue;
    }
    const h = labHost(state, spec.name);
    hosts.set(spec.name, h);
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return { hosts };
}
