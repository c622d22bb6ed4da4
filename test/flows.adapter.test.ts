import { adapterDriver } from "./utils/drivers.js"
import { describeFlows } from "./utils/flows.js"

describeFlows(adapterDriver)
