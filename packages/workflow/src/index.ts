/**
 * @since 0.1.0
 */
export * as Interpolation from "./Interpolation.js"

/**
 * @since 0.1.0
 */
export * as ServiceTokenLoader from "./ServiceTokenLoader.js"

/**
 * @since 0.1.0
 */
export * as Workflow from "./Workflow.js"

/**
 * @since 0.1.0
 */
export * as WorkflowConfig from "./WorkflowConfig.js"
