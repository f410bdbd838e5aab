// Command yaml prints, as hex, the application/json and application/yaml
// bodies the generic apiserver's codec factory writes for fixed metrics
// objects and Status errors, including labels whose plain text would read back as another type,
// natural key order and lines long enough to fold. The Rust unit tests in
// crates/api/src/yaml.rs turn each JSON body into YAML and compare it with the
// YAML line.
//
// Regenerate: cd hack/golden/yaml && go run . > ../../../crates/api/src/yaml_golden.txt
package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

func usage(nanocores, memBytes int64) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewScaledQuantity(nanocores, -9),
		corev1.ResourceMemory: *resource.NewQuantity(memBytes, resource.BinarySI),
	}
}

// Label values and keys chosen to hit each rule of the YAML writer.
var trickyLabels = map[string]string{
	"bool": "true", "yes": "y", "on": "On", "null": "null", "tilde": "~", "empty": "",
	"int": "123", "octal": "0755", "hex": "0x1F", "underscored": "1_000", "signed": "-5",
	"float": "1e3", "dot": ".5", "inf": ".inf", "big": "1e400", "sexagesimal": "1:20",
	"date": "2024-01-02", "badDate": "2024-02-30", "stamp": "2024-01-02T03:04:05Z",
	"colon": "a: b", "hash": "a #b", "lead": "#x", "dash": "- x", "dashword": "-x",
	"quote": "it's", "dquote": "\"q\"", "star": "*x", "unicode": "ünï", "tab": "a\tb",
	"docstart": "---x", "a10": "x", "a9": "x", "a09": "x", "b1": "x", "B2": "x", "_u": "x",
	"9x": "x", "10x": "x", "x.y/z": "x",
	strings.Repeat("k", 130): "long key",
}

func main() {
	scheme := runtime.NewScheme()
	if err := v1beta1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme)
	yamlInfo, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeYAML)
	if !ok {
		panic("no yaml serializer")
	}
	jsonInfo, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	if !ok {
		panic("no json serializer")
	}
	created := metav1.NewTime(time.Unix(1785837605, 0))
	sample := metav1.NewTime(time.Unix(1785837598, 0))
	window := metav1.Duration{Duration: 15004 * time.Millisecond}
	nodes := &v1beta1.NodeMetricsList{Items: []v1beta1.NodeMetrics{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{"kubernetes.io/os": "linux", "a": "b"}, CreationTimestamp: created},
			Timestamp:  sample, Window: window, Usage: usage(123456789, 2147483648),
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "true", Labels: trickyLabels, CreationTimestamp: created},
			Timestamp:  sample, Window: window, Usage: usage(0, 1000),
		},
	}}
	pod := &v1beta1.PodMetrics{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default", Labels: map[string]string{"app": "web"}, CreationTimestamp: created},
		Timestamp:  sample, Window: window,
		Containers: []v1beta1.ContainerMetrics{
			{Name: "app", Usage: usage(7338891, 12533760)},
			{Name: "sidecar", Usage: usage(1500000, 3145728)},
		},
	}
	pods := &v1beta1.PodMetricsList{Items: []v1beta1.PodMetrics{*pod}}
	empty := &v1beta1.PodMetricsList{}
	longName := "a-pod-with-a-rather-long-name-" + strings.Repeat("x", 20)
	notFound := apierrors.NewNotFound(schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, longName).ErrStatus
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, "",
		fmt.Errorf("User \"system:serviceaccount:kube-system:horizontal-pod-autoscaler\" cannot list resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"default\"")).ErrStatus
	spaced := apierrors.NewBadRequest("unable to parse requested label selector \"a in (x,  y)\": found '  ', expected: ',' or ')' after a very long run of text").ErrStatus
	for _, c := range []struct {
		name string
		gv   schema.GroupVersion
		obj  runtime.Object
	}{
		{"node_list", v1beta1.SchemeGroupVersion, nodes},
		{"pod", v1beta1.SchemeGroupVersion, pod},
		{"pod_list", v1beta1.SchemeGroupVersion, pods},
		{"empty_list", v1beta1.SchemeGroupVersion, empty},
		{"not_found", schema.GroupVersion{Version: "v1"}, &notFound},
		{"forbidden", schema.GroupVersion{Version: "v1"}, &forbidden},
		{"bad_request", schema.GroupVersion{Version: "v1"}, &spaced},
	} {
		for _, f := range []struct {
			ext  string
			info runtime.SerializerInfo
		}{{"json", jsonInfo}, {"yaml", yamlInfo}} {
			var buf bytes.Buffer
			if err := codecs.EncoderForVersion(f.info.Serializer, c.gv).Encode(c.obj, &buf); err != nil {
				fmt.Fprintln(os.Stderr, c.name, err)
				os.Exit(1)
			}
			fmt.Printf("%s.%s %x\n", c.name, f.ext, buf.Bytes())
		}
	}
}
