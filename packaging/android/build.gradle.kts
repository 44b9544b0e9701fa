// tokenvault for Android: the uniffi Kotlin (Android flavour), CachedToken and the coroutine
// helpers of the JVM binding, and libtokenvault.so per ABI. Every input comes from build-aar.sh
// as a property.
// NOT RUN HERE (no Android SDK on these machines): see build-aar.sh.
plugins {
    id("com.android.library") version "8.5.2"
    id("org.jetbrains.kotlin.android") version "2.1.21"
    `maven-publish`
}

fun prop(name: String): String =
    providers.gradleProperty(name).orNull ?: error("-P$name is required (run build-aar.sh)")

group = "tokenvault"
version = prop("tokenvaultVersion")
layout.buildDirectory.set(file(prop("tokenvaultBuildDir")))

android {
    namespace = "uniffi.tokenvault"
    compileSdk = 34
    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }
    sourceSets["main"].apply {
        kotlin.srcDirs(prop("tokenvaultKotlin"))
        jniLibs.srcDirs(prop("tokenvaultJniLibs"))
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    publishing {
        singleVariant("release")
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // JNA's Android artifact carries its native stub (libjnidispatch.so) per ABI.
    api("net.java.dev.jna:jna:5.17.0@aar")
    implementation("androidx.annotation:annotation:1.9.1")
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
}

publishing {
    publications {
        register<MavenPublication>("release") {
            groupId = "tokenvault"
            artifactId = "tokenvault-android"
            version = prop("tokenvaultVersion")
            afterEvaluate { from(components["release"]) }
        }
    }
    repositories {
        maven {
            name = "dist"
            url = uri(prop("tokenvaultMavenRepo"))
        }
    }
}
