// Command lab-podexec gives `kubectl exec` in the meshguard.egress lab cluster the identity of
// the pod it targets.
//
// kwok (sigs.k8s.io/kwok) simulates `kubectl exec` by running the command on this machine, as
// configured by an Exec object (kwok.x-k8s.io/v1alpha1) named after the pod: a working
// directory and static environment variables. kwok itself passes nothing about the pod to the
// command, so this controller watches every pod bound to a node and keeps one Exec per pod
// (owned by the pod, so the garbage collector removes it with the pod) that runs the command
//   - in the pod's own working directory  <state>/pods/<namespace>/<pod>/ , which also holds
//     pod.json (the identity below plus labels and annotations), and
//   - with the environment MESHGUARD_POD_NAME, MESHGUARD_POD_NAMESPACE,
//     MESHGUARD_POD_SERVICE_ACCOUNT, MESHGUARD_POD_UID, MESHGUARD_POD_IP, MESHGUARD_NODE_NAME,
//     MESHGUARD_CONTAINER_NAME, MESHGUARD_CONTAINER_IMAGE, MESHGUARD_POD_DIR,
//     MESHGUARD_LAB_KUBECONFIG, MESHGUARD_LAB_STATE and a PATH that starts with the lab's hook
//     directory,
//   - through the wrapper named by --exec-wrapper, if any (KWOK_EXEC_WRAPPER, which the lab's
//     kwok patch 0003 honours): the lab's runs the command inside the pod's network namespace.
//
// It is part of the lab, not of the collection: nothing here exists in a real cluster.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	kwokv1alpha1 "sigs.k8s.io/kwok/pkg/apis/v1alpha1"
	kwokclient "sigs.k8s.io/kwok/pkg/client/clientset/versioned"
)

const fieldManager = "meshguard-lab-podexec"

type controller struct {
	kube      kubernetes.Interface
	kwok      kwokclient.Interface
	pods      cache.Indexer
	queue     workqueue.TypedRateLimitingInterface[string]
	stateDir  string
	path      string
	labConfig string
	labState  string
	wrapper   string
}

func main() {
	var kubeconfig, stateDir, path, labConfig, labState, wrapper string
	flag.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the lab cluster")
	flag.StringVar(&stateDir, "pods-dir", "", "directory that holds one working directory per pod")
	flag.StringVar(&path, "path", os.Getenv("PATH"), "PATH for commands run by kubectl exec")
	flag.StringVar(&labConfig, "lab-kubeconfig", "", "kubeconfig exposed to exec'd commands as MESHGUARD_LAB_KUBECONFIG (default: --kubeconfig)")
	flag.StringVar(&labState, "lab-state", "", "the lab's state directory, exposed as MESHGUARD_LAB_STATE")
	flag.StringVar(&wrapper, "exec-wrapper", "", "command that runs every exec'd command (KWOK_EXEC_WRAPPER)")
	flag.Parse()
	if stateDir == "" {
		klog.Exit("--pods-dir is required")
	}
	if labConfig == "" {
		labConfig = kubeconfig
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		klog.Exitf("kubeconfig: %v", err)
	}
	cfg.UserAgent = fieldManager
	c := &controller{
		kube:      kubernetes.NewForConfigOrDie(cfg),
		kwok:      kwokclient.NewForConfigOrDie(cfg),
		queue:     workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		stateDir:  stateDir,
		path:      path,
		labConfig: labConfig,
		labState:  labState,
		wrapper:   wrapper,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	factory := informers.NewSharedInformerFactory(c.kube, 10*time.Minute)
	inf := factory.Core().V1().Pods().Informer()
	enqueue := func(obj interface{}) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
	c.pods = inf.GetIndexer()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		klog.Exit("pod informer did not sync")
	}
	klog.Infof("lab-podexec: watching pods; working directories under %s", stateDir)
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	for c.next(ctx) {
	}
}

func (c *controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		klog.Warningf("sync %s: %v", key, err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

func (c *controller) podDir(ns, name string) string {
	return filepath.Join(c.stateDir, ns, name)
}

func (c *controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	obj, exists, err := c.pods.GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		// The Exec goes with its owner (garbage collector); the working directory is ours.
		return os.RemoveAll(c.podDir(ns, name))
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil {
		return nil
	}
	dir := c.podDir(ns, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := c.writeIdentity(dir, pod); err != nil {
		return err
	}

	want := c.desired(pod, dir)
	execs := c.kwok.KwokV1alpha1().Execs(ns)
	got, err := execs.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = execs.Create(ctx, want, metav1.CreateOptions{FieldManager: fieldManager})
		if err == nil {
			klog.Infof("exec for pod %s/%s (sa %s) ready", ns, name, pod.Spec.ServiceAccountName)
		}
		return err
	case err != nil:
		return err
	}
	if reflect.DeepEqual(got.Spec, want.Spec) && reflect.DeepEqual(got.OwnerReferences, want.OwnerReferences) {
		return nil
	}
	got.Spec = want.Spec
	got.OwnerReferences = want.OwnerReferences
	_, err = execs.Update(ctx, got, metav1.UpdateOptions{FieldManager: fieldManager})
	return err
}

func (c *controller) desired(pod *corev1.Pod, dir string) *kwokv1alpha1.Exec {
	base := []kwokv1alpha1.EnvVar{
		{Name: "MESHGUARD_POD_NAME", Value: pod.Name},
		{Name: "MESHGUARD_POD_NAMESPACE", Value: pod.Namespace},
		{Name: "MESHGUARD_POD_SERVICE_ACCOUNT", Value: serviceAccount(pod)},
		{Name: "MESHGUARD_POD_UID", Value: string(pod.UID)},
		{Name: "MESHGUARD_POD_IP", Value: pod.Status.PodIP},
		{Name: "MESHGUARD_NODE_NAME", Value: pod.Spec.NodeName},
		{Name: "MESHGUARD_POD_DIR", Value: dir},
		{Name: "MESHGUARD_LAB_KUBECONFIG", Value: c.labConfig},
		{Name: "MESHGUARD_LAB_STATE", Value: c.labState},
		{Name: "PATH", Value: c.path},
	}
	if c.wrapper != "" {
		base = append(base, kwokv1alpha1.EnvVar{Name: "KWOK_EXEC_WRAPPER", Value: c.wrapper})
	}
	target := func(container, image string) kwokv1alpha1.ExecTarget {
		envs := append(append([]kwokv1alpha1.EnvVar(nil), base...),
			kwokv1alpha1.EnvVar{Name: "MESHGUARD_CONTAINER_NAME", Value: container},
			kwokv1alpha1.EnvVar{Name: "MESHGUARD_CONTAINER_IMAGE", Value: image})
		t := kwokv1alpha1.ExecTarget{Local: &kwokv1alpha1.ExecTargetLocal{WorkDir: dir, Envs: envs}}
		if container != "" {
			t.Containers = []string{container}
		}
		return t
	}
	var targets []kwokv1alpha1.ExecTarget
	for _, ctr := range pod.Spec.Containers {
		targets = append(targets, target(ctr.Name, ctr.Image))
	}
	// init containers too: Istio's native sidecar (istio-proxy) may be one
	for _, ctr := range pod.Spec.InitContainers {
		targets = append(targets, target(ctr.Name, ctr.Image))
	}
	ctrl := true
	return &kwokv1alpha1.Exec{
		TypeMeta: metav1.TypeMeta{APIVersion: kwokv1alpha1.GroupVersion.String(), Kind: kwokv1alpha1.ExecKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:      pod.Name,
			Namespace: pod.Namespace,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": fieldManager},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, Controller: &ctrl,
			}},
		},
		Spec: kwokv1alpha1.ExecSpec{Execs: targets},
	}
}

func serviceAccount(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName != "" {
		return pod.Spec.ServiceAccountName
	}
	return "default"
}

// writeIdentity writes pod.json into the pod's working directory (only when it changes).
func (c *controller) writeIdentity(dir string, pod *corev1.Pod) error {
	containers := make([]string, 0, len(pod.Spec.Containers))
	for _, ctr := range pod.Spec.Containers {
		containers = append(containers, ctr.Name)
	}
	sort.Strings(containers)
	initContainers := make([]string, 0, len(pod.Spec.InitContainers))
	for _, ctr := range pod.Spec.InitContainers {
		initContainers = append(initContainers, ctr.Name)
	}
	id := map[string]interface{}{
		"name":           pod.Name,
		"namespace":      pod.Namespace,
		"serviceAccount": serviceAccount(pod),
		"uid":            pod.UID,
		"podIP":          pod.Status.PodIP,
		"nodeName":       pod.Spec.NodeName,
		"labels":         pod.Labels,
		"annotations":    pod.Annotations,
		"containers":     containers,
		"initContainers": initContainers,
	}
	data, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	file := filepath.Join(dir, "pod.json")
	if old, err := os.ReadFile(file); err == nil && string(old) == string(data) {
		return nil
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
