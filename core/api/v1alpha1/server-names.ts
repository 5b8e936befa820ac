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
/** The ranks of the revision a group's pods were made from: which pods that group needs whole. */
export const LABEL_SERVER_RANKS = `${GROUP}/server-ranks`;
/** `rank` for a rank pod, `front` for the group's serving front (`runahead serve --ranks-at`). */
export const LABEL_SERVER_ROLE = `${GROUP}/server-role`;
export const SERVER_ROLES = ['rank', 'front'] as const;
export type ServerRole = (typeof SERVER_ROLES)[number];

/** The port a group's front serves completions on, inside the pod; the Service maps spec.service.port. */
export const FRONT_PORT = 8000;
export const FRONT_PORT_NAME = 'http';

/** Most rank groups one server runs (bounds the names below and the operator's work per server). */
export const MAX_SERVER_REPLICAS = 32;

/** Names of a server's children, derived from its name (validated to leave room for them). */
export const serverChildNames = {
  /** The Service clients reach, over every ready group's front. */
  service: (server: string): string => server,
  /**
   * Group g as the job code names a rank group (its "job" name): pods `<server>-g<g>-<rank>`, the
   * headless Service `<server>-g<g>-ranks` giving them stable DNS names. The `g` keeps them apart from
   * a RunaheadJob named `<server>-<n>`.
   */
  group: (server: string, group: number): string => `${server}-g${group}`,
  frontPod: (server: string, group: number): string => `${server}-g${group}-front`,
};

/** The longest server name for which every child name is a DNS-1035 label (63 characters). */
export const MAX_SERVER_NAME_LENGTH = 50;
