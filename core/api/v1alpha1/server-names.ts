// Names of the RunaheadServer API that the operator and the chart agree on: kind, labels that find a
// server's children, and the children's names. The group and version are the job's (names.ts).
import { GROUP } from './names.ts';

export const SERVER_KIND = 'RunaheadServer';
export const SERVER_PLURAL = 'runaheadservers';
export const SERVER_SINGULAR = 'runaheadserver';
/** Not `rs` (ReplicaSet's). */
export const SERVER_SHORT_NAMES = ['rsv'] as const;
export const SERVER_CRD_NAME = `${SERVER_PLURAL}.${GROUP}`;

/** Labels on every child of a server: the server, the rank group, and the spec revision it runs. */
export const LABEL_SERVER = `${GROUP}/server`;
export const LABEL_SERVER_GROUP = `${GROUP}/server-group`;
export const LABEL_SERVER_REVISION = `${GROUP}/server-revision`;
/** `rank` for a rank pod, `front` for the group's serving front (same label as the job's pods). */
export const SERVER_ROLES = ['rank', 'front'] as const;

/** The port a group's front serves completions on, inside the pod; the Service maps spec.service.port. */
export const FRONT_PORT = 8000;
export const FRONT_PORT_NAME = 'http';

/** Most rank groups one server runs (bounds the names below and the operator's work per server). */
export const MAX_SERVER_REPLICAS = 32;

/** Names of a server's children, derived from its name (validated to leave room for them). */
export const serverChildNames = {
  /** The Service clients reach, over every group's front. */
  service: (server: string): string => server,
  /** Headless Service giving group g's rank i the stable name `<server>-<g>-<i>.<server>-<g>-ranks`. */
  groupService: (server: string, group: number): string => `${server}-${group}-ranks`,
  rankPod: (server: string, group: number, rank: number): string => `${server}-${group}-${rank}`,
  frontPod: (server: string, group: number): string => `${server}-${group}-front`,
};

/** The longest server name for which every child name is a DNS-1035 label (63 characters). */
export const MAX_SERVER_NAME_LENGTH = 50;
