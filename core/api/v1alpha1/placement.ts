// Where a job's rank group runs as a whole: one topology domain, packed in chain order, scheduled
// all-or-nothing. These fields say what the user wants; operator/rank-placement.ts compiles them into
// core/v1 pod affinity, scheduling gates and the pod-group labels a gang scheduler reads.
//
// Why a group and not a pod: rank i streams its K/V to rank i+1 only, and all ranks hold the model
// while the chain runs. Three of four ranks scheduled hold GPUs and do nothing (volcano #4005, lws
// #407); ranks spread over racks pay the slowest link on every hop. JobSet's exclusive placement
// (one job per domain, by pod affinity + anti-affinity on a topology key) is the anchor here.
import { z } from 'zod';
import { QualifiedName } from './scheduling.ts';

export const PACKINGS = ['Consecutive', 'None'] as const;
/** Gang schedulers the operator makes a PodGroup for and labels the rank pods of. */
export const POD_GROUP_SCHEDULERS = ['Coscheduling', 'Volcano'] as const;
export type PodGroupScheduler = (typeof POD_GROUP_SCHEDULERS)[number];
/** Where each gang scheduler's PodGroup lives (the operator creates one per group and attempt). */
export const POD_GROUP_APIS: Readonly<
  Record<PodGroupScheduler, { readonly group: string; readonly version: string; readonly plural: string }>
> = {
  Coscheduling: { group: 'scheduling.x-k8s.io', version: 'v1alpha1', plural: 'podgroups' },
  Volcano: { group: 'scheduling.volcano.sh', version: 'v1beta1', plural: 'podgroups' },
};
/** The schedulerName a pod group's scheduler is installed under unless the job names another. */
export const DEFAULT_SCHEDULER_NAMES: Readonly<Record<PodGroupScheduler, string>> = {
  Coscheduling: 'scheduler-plugins-scheduler',
  Volcano: 'volcano',
};

const EXCLUSIVE_MESSAGE =
  'placement.exclusive needs placement.topologyKey (the domain a group keeps to itself)';
const SCHEDULER_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

const PodGroup = z
  .strictObject({
    scheduler: z
      .enum(POD_GROUP_SCHEDULERS)
      .describe(
        'Coscheduling (kubernetes-sigs/scheduler-plugins, label scheduling.x-k8s.io/pod-group) or Volcano (annotation scheduling.k8s.io/group-name).',
      ),
    schedulerName: z
      .string()
      .min(1)
      .max(253)
      .regex(SCHEDULER_NAME, 'must be a scheduler name such as volcano (a-z, 0-9, - and .)')
      .optional()
      .describe(
        'The pods’ schedulerName; default: scheduler-plugins-scheduler for Coscheduling, volcano for Volcano.',
      ),
  })
  .describe(
    'Label the rank pods as one pod group (minMember = ranks) of a gang scheduler, which binds all of them or none.',
  );

export const Placement = z
  .strictObject({
    topologyKey: QualifiedName.optional().describe(
      'A node label (a rack, an NVLink clique): every rank of a group lands on nodes with one value of it.',
    ),
    exclusive: z
      .boolean()
      .default(false)
      .describe(
        'With topologyKey: one rank group per domain; the ranks of other RunaheadJobs stay out of it, and it avoids domains they hold.',
      ),
    packing: z
      .enum(PACKINGS)
      .default('Consecutive')
      .describe(
        'Consecutive: rank i prefers the node of rank i-1 and i+1 (the chain sends i → i+1 only), so nodes with several GPUs hold neighbours; None: no preference.',
      ),
    gang: z
      .boolean()
      .default(true)
      .describe(
        'Create the rank pods with the scheduling gate runahead.dev/gang and lift it only once every rank pod of the group exists, so no rank is scheduled alone.',
      ),
    podGroup: PodGroup.optional(),
  })
  .superRefine((p, ctx) => {
    if (p.exclusive && p.topologyKey === undefined)
      ctx.addIssue({ code: 'custom', path: ['exclusive'], message: EXCLUSIVE_MESSAGE });
  })
  .meta({
    'x-kubernetes-validations': [
      {
        rule: '!self.exclusive || has(self.topologyKey)',
        message: EXCLUSIVE_MESSAGE,
        fieldPath: '.exclusive',
      },
    ],
  })
  .describe('How the rank group is placed and scheduled as a whole (gang, topology domain, packing).');
export type Placement = z.infer<typeof Placement>;
