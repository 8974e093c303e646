// Package lambdasim runs the stack's Lambda functions on loopback as Lambda runs them: the real
// bootstrap binaries under the Lambda Runtime Interface Emulator (aws-lambda-rie, what AWS runs in
// Lambda container images), fed by the event sources template.yaml gives them, against moto. It is
// the local world's Lambda, for the end-to-end tests and `make demo`. In the order a deployment
// comes up (Deploy does all of it):
//
//  1. tools (tools.go): Build builds every services/<name> for this machine with
//     -tags lambda.norpc; InstallRIE and LookRIE install and find aws-lambda-rie (RIEVersion) in
//     .cache/bin;
//  2. the template (template.go, intrinsic.go): LoadTemplate reads template.yaml with its
//     short-form intrinsic functions; a Resolver (Values, Resources, Chain) gives !Ref and !GetAtt
//     their values, and the evaluator fails naming the template line of anything unresolved.
//     Names, settings and environments come from the template, never restated here;
//  3. resources (resources.go): CreateResources makes the template's queues (DLQ and redrive
//     policy included), tables (GSIs, TTL) and secrets (the webhook secret generated) in moto,
//     named as CloudFormation names them; CreateParameters makes its SSM parameters;
//  4. functions (function.go): StartFunction runs a pool of emulators per function, each lent to
//     one invocation at a time (one emulator crashes on a second concurrent request), with the
//     template's environment, timeout and memory plus what Lambda sets, and AWS_ENDPOINT_URL on
//     loopback with dummy credentials; Function.Invoke tells a function error from a failed
//     invocation, and Invoke sends a one-off event (an Image Builder state change, a custom
//     resource request);
//  5. event sources: FrontDoor (frontdoor.go) is the HTTP API (payload format 2.0); SQSPoller
//     (sqspoller.go) is the SQS event source mapping (batch size, partial batch responses);
//     Timer (timer.go) is the EventBridge Scheduler schedule.
//
// Tests that need aws-lambda-rie or moto say so, and fail (never skip) when the local world is
// required (SPOTRUNNER_WORLD=1) but missing.
package lambdasim
