import grpc
import helloworld_pb2
import helloworld_pb2_grpc

# Replace with your gRPC endpoint. You can find it in the call info panel in the PAI-EAS console.
# The public network endpoint format is: service-name.{uid}.{region}.pai-eas.aliyuncs.com:80 (the port is fixed at 80).
host = "your-service-endpoint:your port"
# Replace with your service token. You can find it on the service details page in the PAI-EAS console.
token = "your-service-token"

# 1. Create a channel to connect to the server.
channel = grpc.insecure_channel(host)

# 2. Initialize the stub (client handle).
stub = helloworld_pb2_grpc.GreeterServiceStub(channel)

# 3. Construct the request.
request = helloworld_pb2.HelloRequest(name="World")

# 4. Construct the authentication metadata to pass the token to the PAI-EAS service.
metadata = (("authorization",  "Bearer " + token),)

print("Initiating gRPC call...")

try:
    # 5. Make a synchronous request. Pass the metadata for authentication.
    response = stub.SayHello(request, metadata=metadata, timeout=5.0)
    print(response.message)
except grpc.RpcError as e:
    print(f"Call failed: {e.code()} - {e.details()}")
finally:
    channel.close()
