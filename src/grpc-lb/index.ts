/**
 * augur for proxyless gRPC clients: `import { registerAugurBalancer } from 'augur/grpc-lb'`.
 */
export {
  AUGUR_LB_POLICY_NAME,
  AUGUR_LB_TYPE_URL,
  AugurBalancer,
  AugurBalancerConfig,
  registerAugurBalancer,
} from './balancer.js';
