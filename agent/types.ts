// The node list every node source produces and the reconciler consumes.

/** One cluster node as the overlay sees it. */
export interface NodeInfo {
  name: string;
  /** the node's underlay (InternalIP) IPv4 address; "" when not known yet */
  ip: string;
  /** the node's IPv4 pod CIDR; "" when none has been allocated yet */
  podCIDR: string;
  /** when the node object was made (ISO 8601), where the source knows: the older wins a conflict */
  created?: string;
}

/** Everything a node source knows at one moment. */
export interface NodeSnapshot {
  /** the CIDR that holds every pod CIDR (traffic inside it is never masqueraded) */
  clusterCIDR: string;
  nodes: NodeInfo[];
}

/**
 * A source of node lists. `start` calls `onChange` with a complete snapshot whenever the
 * list may have changed (possibly with an identical list: consumers are level-triggered)
 * and `onError` with problems worth a log line (the source keeps trying by itself).
 */
export interface NodeSource {
  start(onChange: (snapshot: NodeSnapshot) => void, onError?: (message: string) => void): void;
  stop(): void;
}
